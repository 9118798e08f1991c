# Included by _codec_c.pyx (one extension, split by concern); not compiled on its own.
# -- the layouts of Signature and FrozenDict, read once ----------------------------------------

# Fields in wire order: (wire key, Signature slot).
_FIELDS = (
    ("UUID", "uuid"),
    ("Name", "name"),
    ("RoutingKey", "routing_key"),
    ("ETA", "eta"),
    ("GroupUUID", "group_uuid"),
    ("GroupTaskCount", "group_task_count"),
    ("Args", "args"),
    ("Headers", "headers"),
    ("Priority", "priority"),
    ("Immutable", "immutable"),
    ("RetryCount", "retry_count"),
    ("RetryTimeout", "retry_timeout"),
    ("OnSuccess", "on_success"),
    ("OnError", "on_error"),
    ("ChordCallback", "chord_callback"),
)

cdef enum:
    NFIELDS = 15
    F_UUID = 0
    F_NAME = 1
    F_ROUTING_KEY = 2
    F_ETA = 3
    F_GROUP_UUID = 4
    F_GROUP_TASK_COUNT = 5
    F_ARGS = 6
    F_HEADERS = 7
    F_PRIORITY = 8
    F_IMMUTABLE = 9
    F_RETRY_COUNT = 10
    F_RETRY_TIMEOUT = 11
    F_ON_SUCCESS = 12
    F_ON_ERROR = 13
    F_CHORD = 14
    STACK_BUFFER = 2048
    STACK_CHARS = 256
    FLOAT_STACK = 64
    VEC_INLINE = 8


cdef Py_ssize_t SIG_OFF[NFIELDS]
cdef Py_ssize_t FD_DATA_OFF
cdef Py_ssize_t FD_HASH_OFF
cdef int MAX_DEPTH = _PY_MAX_DEPTH
cdef long MAX_PRIORITY = _PY_MAX_PRIORITY

cdef object _MemberDescriptor = types.MemberDescriptorType
cdef object _Signature = Signature
cdef object _FrozenDict = FrozenDict
cdef object _EMPTY_DICT = EMPTY_DICT
cdef object _EMPTY_STR = ""
cdef object _EMPTY_TUPLE = ()
cdef object _py_encode = _codec_py.encode
cdef object _py_decode = _codec_py.decode
cdef object _py_parse_number_args = _codec_py.parse_number_args
# The value of each field when its key is absent or null (Name has none: it is required).
cdef tuple _DEFAULTS = ("", None, "", None, "", 0, (), EMPTY_DICT, 0, False, 0, 0, (), (), None)
cdef dict _KEY_INDEX = {key: i for i, (key, _slot) in enumerate(_FIELDS)}


cdef Py_ssize_t _slot_offset(object cls, str name) except -1:
    descr = cls.__dict__.get(name)
    if type(descr) is not _MemberDescriptor or descr.__objclass__ is not cls:
        raise ImportError(f"{cls.__name__}.{name} is not a slot; the compiled codec cannot be used")
    cdef PyMemberDef* member = (<PyMemberDescrObject*><PyObject*>descr).d_member
    if member.type != T_OBJECT_EX or member.offset <= 0:
        raise ImportError(f"{cls.__name__}.{name} is not an object slot; the compiled codec cannot be used")
    return member.offset


cdef int _read_layouts() except -1:
    global FD_DATA_OFF, FD_HASH_OFF
    if set(Signature.__slots__) != {slot for _key, slot in _FIELDS}:
        raise ImportError("Signature's fields changed; the compiled codec must be updated")
    if Signature.__new__ is not object.__new__ or FrozenDict.__new__ is not object.__new__:
        raise ImportError("Signature or FrozenDict has its own __new__; the compiled codec cannot be used")
    if set(FrozenDict.__slots__) != {"_data", "_hash"}:
        raise ImportError("FrozenDict's slots changed; the compiled codec must be updated")
    for i, (_key, slot) in enumerate(_FIELDS):
        SIG_OFF[i] = _slot_offset(Signature, slot)
    FD_DATA_OFF = _slot_offset(FrozenDict, "_data")
    FD_HASH_OFF = _slot_offset(FrozenDict, "_hash")
    return 0


_read_layouts()


cdef inline PyObject* _get_slot(object obj, Py_ssize_t offset) noexcept:
    return (<PyObject**>((<char*><PyObject*>obj) + offset))[0]


cdef inline void _init_slot(object obj, Py_ssize_t offset, object value) noexcept:
    """Store ``value`` in a slot of a fresh object (the slot is NULL), taking a reference."""
    Py_INCREF(value)
    (<PyObject**>((<char*><PyObject*>obj) + offset))[0] = <PyObject*>value


cdef object _wrap_dict(dict data):
    """``FrozenDict._wrap(data)``: a FrozenDict adopting ``data``."""
    fd = PyType_GenericAlloc(<PyTypeObject*>_FrozenDict, 0)
    _init_slot(fd, FD_DATA_OFF, data)
    _init_slot(fd, FD_HASH_OFF, None)
    return fd
