# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled codec: ``encode``, ``decode`` and ``parse_number_args`` of the pure twin
``_codec_py``, with a schema-specific JSON writer and parser.

The fast paths write and read every well-formed message themselves. They are strict: whatever
they do not accept (an error, or a rare shape such as a duplicate key whose first value was
invalid, or a lone surrogate under a key nobody reads) is handed to the twin, which then returns
the value or raises the error. So results, error classes and error messages are the twin's by
construction, and the fast paths only have to be right when they succeed.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_FromDouble
from cpython.list cimport PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject
from libc.math cimport isfinite
from libc.string cimport memcmp, memcpy, memset, strlen

import types

from machinery._speedups import _codec_py
from machinery._speedups._codec_py import format_eta, parse_eta, typed_arg
from machinery.errors import DecodeError, EncodeError
from machinery.jsonvalues import EMPTY_DICT, MAX_DEPTH as _PY_MAX_DEPTH, FrozenDict, thaw
from machinery.signature import Signature

from datetime import datetime as _datetime

__all__ = ["decode", "encode", "format_eta", "parse_eta", "parse_number_args", "typed_arg"]


cdef extern from "Python.h":
    ctypedef unsigned int ucs4 "Py_UCS4"
    object PyUnicode_New(Py_ssize_t size, ucs4 maxchar)
    void* PyUnicode_DATA(object o)
    int PyUnicode_KIND(object o)
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    ucs4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    object PyUnicode_FromKindAndData(int kind, const void* buffer, Py_ssize_t size)
    int PyUnicode_4BYTE_KIND
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception) except? -1.0
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int* ptype) except NULL
    int Py_DTSF_ADD_DOT_0
    object PyLong_FromString(const char* s, char** pend, int base)
    object PyLong_FromLongLong(long long v)
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1
    double PyLong_AsDouble(object o) except? -1.0
    object PyType_GenericAlloc(PyTypeObject* cls, Py_ssize_t nitems)
    object _new_tuple "PyTuple_New"(Py_ssize_t n)
    void _tuple_set "PyTuple_SET_ITEM"(object t, Py_ssize_t i, PyObject* o)
    void _list_set "PyList_SET_ITEM"(object t, Py_ssize_t i, PyObject* o)
    object _new_list "PyList_New"(Py_ssize_t n)
    PyObject* _tuple_get "PyTuple_GET_ITEM"(object t, Py_ssize_t i)
    PyObject* _list_get "PyList_GET_ITEM"(object t, Py_ssize_t i)

    ctypedef struct PyMemberDef:
        const char* name
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member

cdef extern from "structmember.h":
    int T_OBJECT_EX


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
cdef long MAX_PRIORITY = 255

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


# == encoding ===================================================================================

ctypedef struct Writer:
    char* buf
    Py_ssize_t len
    Py_ssize_t cap
    bint heap


cdef int _w_grow(Writer* w, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = w.cap * 2
    cdef char* grown
    while cap < w.len + need:
        cap *= 2
    if w.heap:
        grown = <char*>PyMem_Realloc(w.buf, cap)
    else:
        grown = <char*>PyMem_Malloc(cap)
        if grown != NULL:
            memcpy(grown, w.buf, w.len)
    if grown == NULL:
        raise MemoryError()
    w.buf = grown
    w.cap = cap
    w.heap = True
    return 0


cdef inline int _w_reserve(Writer* w, Py_ssize_t need) except -1:
    if w.len + need > w.cap:
        return _w_grow(w, need)
    return 0


cdef inline int _w_raw(Writer* w, const char* data, Py_ssize_t n) except -1:
    if w.len + n > w.cap:
        _w_grow(w, n)
    memcpy(w.buf + w.len, data, n)
    w.len += n
    return 0


# 1 for the ASCII bytes json escapes: control characters, '"' and '\\'.
cdef unsigned char ESCAPE[128]
for _c in range(128):
    ESCAPE[_c] = 1 if (_c < 0x20 or _c == 0x22 or _c == 0x5C) else 0
cdef const char* HEX = b"0123456789abcdef"
# 1 for the bytes a JSON string holds as they are: printable ASCII but '"' and '\\'.
cdef unsigned char PLAIN[256]
for _c in range(256):
    PLAIN[_c] = 1 if (0x20 <= _c < 0x80 and _c != 0x22 and _c != 0x5C) else 0


cdef inline void _w_escape(Writer* w, ucs4 c) noexcept:
    """Write the json escape of ASCII ``c`` (room for 6 bytes was reserved)."""
    cdef char* out = w.buf + w.len
    out[0] = b'\\'
    if c == 0x22:
        out[1] = b'"'
    elif c == 0x5C:
        out[1] = b'\\'
    elif c == 0x0A:
        out[1] = b'n'
    elif c == 0x0D:
        out[1] = b'r'
    elif c == 0x09:
        out[1] = b't'
    elif c == 0x08:
        out[1] = b'b'
    elif c == 0x0C:
        out[1] = b'f'
    else:
        out[1] = b'u'
        out[2] = b'0'
        out[3] = b'0'
        out[4] = HEX[(c >> 4) & 0xF]
        out[5] = HEX[c & 0xF]
        w.len += 6
        return
    w.len += 2


cdef int _w_str(Writer* w, object s) except -1:
    """Write exact str ``s`` as a JSON string, as ``json.dumps(ensure_ascii=False)`` does, in
    UTF-8; a surrogate code point is an EncodeError (UTF-8 cannot carry it)."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s)
    cdef Py_ssize_t i, run_start
    cdef const unsigned char* a
    cdef void* data = PyUnicode_DATA(s)
    cdef int kind
    cdef ucs4 c
    cdef char* out
    _w_reserve(w, n * 6 + 2)
    w.buf[w.len] = b'"'
    w.len += 1
    if PyUnicode_IS_ASCII(s):
        a = <const unsigned char*>data
        run_start = 0
        for i in range(n):
            if ESCAPE[a[i]]:
                memcpy(w.buf + w.len, a + run_start, i - run_start)
                w.len += i - run_start
                _w_escape(w, a[i])
                run_start = i + 1
        memcpy(w.buf + w.len, a + run_start, n - run_start)
        w.len += n - run_start
    else:
        kind = PyUnicode_KIND(s)
        for i in range(n):
            c = PyUnicode_READ(kind, data, i)
            out = w.buf + w.len
            if c < 0x80:
                if ESCAPE[c]:
                    _w_escape(w, c)
                else:
                    out[0] = <char>c
                    w.len += 1
            elif c < 0x800:
                out[0] = <char>(0xC0 | (c >> 6))
                out[1] = <char>(0x80 | (c & 0x3F))
                w.len += 2
            elif c < 0x10000:
                if 0xD800 <= c <= 0xDFFF:
                    raise EncodeError("message: a string holds a lone surrogate, which UTF-8 cannot carry")
                out[0] = <char>(0xE0 | (c >> 12))
                out[1] = <char>(0x80 | ((c >> 6) & 0x3F))
                out[2] = <char>(0x80 | (c & 0x3F))
                w.len += 3
            else:
                out[0] = <char>(0xF0 | (c >> 18))
                out[1] = <char>(0x80 | ((c >> 12) & 0x3F))
                out[2] = <char>(0x80 | ((c >> 6) & 0x3F))
                out[3] = <char>(0x80 | (c & 0x3F))
                w.len += 4
    w.buf[w.len] = b'"'
    w.len += 1
    return 0


cdef int _w_int(Writer* w, object v) except -1:
    """Write exact int ``v`` as ``int.__repr__`` does."""
    cdef int overflow = 0
    cdef long long x = PyLong_AsLongLongAndOverflow(v, &overflow)
    cdef unsigned long long u
    cdef char digits[24]
    cdef int n = 0
    cdef bytes text
    if overflow:
        text = repr(v).encode("ascii")  # ValueError past the int-digits limit, as json.dumps
        return _w_raw(w, PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text))
    _w_reserve(w, 21)
    if x < 0:
        w.buf[w.len] = b'-'
        w.len += 1
        u = <unsigned long long>0 - <unsigned long long>x
    else:
        u = <unsigned long long>x
    while True:
        digits[n] = <char>(48 + u % 10)
        n += 1
        u //= 10
        if u == 0:
            break
    while n > 0:
        n -= 1
        w.buf[w.len] = digits[n]
        w.len += 1
    return 0


cdef int _w_float(Writer* w, object v) except -1:
    """Write exact float ``v`` as ``float.__repr__`` does; NaN and infinities are EncodeErrors."""
    cdef double x = PyFloat_AS_DOUBLE(v)
    if not isfinite(x):
        raise EncodeError(f"message: {v!r} is not a JSON number")
    cdef char* text = PyOS_double_to_string(x, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        _w_raw(w, text, strlen(text))
    finally:
        PyMem_Free(text)
    return 0


cdef int _w_value(Writer* w, object v, int depth) except -1:
    """Write a frozen JSON value; containers at ``depth`` must not pass MAX_DEPTH."""
    cdef object t = type(v)
    cdef Py_ssize_t i, n
    cdef bint first
    if t is str:
        return _w_str(w, v)
    if t is int:
        return _w_int(w, v)
    if t is bool:
        if v:
            return _w_raw(w, b"true", 4)
        return _w_raw(w, b"false", 5)
    if v is None:
        return _w_raw(w, b"null", 4)
    if t is float:
        return _w_float(w, v)
    if t is tuple:
        if depth > MAX_DEPTH:
            raise EncodeError("message: nested too deep")
        n = len(<tuple>v)
        _w_raw(w, b"[", 1)
        for i in range(n):
            if i:
                _w_raw(w, b",", 1)
            _w_value(w, <object>_tuple_get(v, i), depth + 1)
        return _w_raw(w, b"]", 1)
    if t is _FrozenDict:
        if depth > MAX_DEPTH:
            raise EncodeError("message: nested too deep")
        data_ptr = _get_slot(v, FD_DATA_OFF)
        if data_ptr == NULL or type(<object>data_ptr) is not dict:
            raise EncodeError("message: a FrozenDict without a dict")
        data = <dict><object>data_ptr
        _w_raw(w, b"{", 1)
        first = True
        for key, item in data.items():
            if type(key) is not str:
                raise EncodeError("message: a key is not a str")
            if not first:
                _w_raw(w, b",", 1)
            first = False
            _w_str(w, key)
            _w_raw(w, b":", 1)
            _w_value(w, item, depth + 1)
        return _w_raw(w, b"}", 1)
    raise EncodeError(f"message: {t.__name__} is not a JSON value")


cdef inline object _field(object sig, int i):
    cdef PyObject* ptr = _get_slot(sig, SIG_OFF[i])
    if ptr == NULL:
        raise EncodeError("message: a Signature field is not set")
    return <object>ptr


cdef inline int _w_str_field(Writer* w, object v) except -1:
    if type(v) is not str:
        raise EncodeError("message: expected str")
    return _w_str(w, v)


cdef inline int _w_int_field(Writer* w, object v) except -1:
    if type(v) is not int:
        raise EncodeError("message: expected int")
    return _w_int(w, v)


cdef int _w_signatures(Writer* w, object sigs, int depth) except -1:
    if type(sigs) is not tuple:
        raise EncodeError("message: expected a tuple of Signatures")
    cdef Py_ssize_t i, n = len(<tuple>sigs)
    if n == 0:
        return _w_raw(w, b"null", 4)
    if depth > MAX_DEPTH:
        raise EncodeError("message: nested too deep")
    _w_raw(w, b"[", 1)
    for i in range(n):
        if i:
            _w_raw(w, b",", 1)
        _w_signature(w, <object>_tuple_get(sigs, i), depth + 1)
    return _w_raw(w, b"]", 1)


cdef int _w_signature(Writer* w, object sig, int depth) except -1:
    """Write ``sig`` with its keys in the twin's order; checks in the twin's order too."""
    if type(sig) is not _Signature:
        raise EncodeError("message: expected a Signature")
    if depth > MAX_DEPTH:
        raise EncodeError("message: nested too deep")
    eta = _field(sig, F_ETA)
    if eta is not None and not isinstance(eta, _datetime):
        raise EncodeError("message: ETA is not a datetime")
    args = _field(sig, F_ARGS)
    if type(args) is not tuple:
        raise EncodeError("message: Args is not a tuple")
    immutable = _field(sig, F_IMMUTABLE)
    if type(immutable) is not bool:
        raise EncodeError("message: Immutable is not a bool")
    headers = _field(sig, F_HEADERS)
    if type(headers) is not _FrozenDict:
        raise EncodeError("message: Headers is not a FrozenDict")
    _w_raw(w, b'{"UUID":', 8)
    _w_str_field(w, _field(sig, F_UUID))
    _w_raw(w, b',"Name":', 8)
    _w_str_field(w, _field(sig, F_NAME))
    _w_raw(w, b',"RoutingKey":', 14)
    _w_str_field(w, _field(sig, F_ROUTING_KEY))
    _w_raw(w, b',"ETA":', 7)
    if eta is None:
        _w_raw(w, b"null", 4)
    else:
        _w_str_field(w, format_eta(eta))
    _w_raw(w, b',"GroupUUID":', 13)
    _w_str_field(w, _field(sig, F_GROUP_UUID))
    _w_raw(w, b',"GroupTaskCount":', 18)
    _w_int_field(w, _field(sig, F_GROUP_TASK_COUNT))
    _w_raw(w, b',"Args":', 8)
    _w_value(w, args, depth + 1)
    _w_raw(w, b',"Headers":', 11)
    _w_value(w, headers, depth + 1)
    _w_raw(w, b',"Priority":', 12)
    _w_int_field(w, _field(sig, F_PRIORITY))
    if immutable:
        _w_raw(w, b',"Immutable":true', 17)
    else:
        _w_raw(w, b',"Immutable":false', 18)
    _w_raw(w, b',"RetryCount":', 14)
    _w_int_field(w, _field(sig, F_RETRY_COUNT))
    _w_raw(w, b',"RetryTimeout":', 16)
    _w_int_field(w, _field(sig, F_RETRY_TIMEOUT))
    _w_raw(w, b',"OnSuccess":', 13)
    _w_signatures(w, _field(sig, F_ON_SUCCESS), depth + 1)
    _w_raw(w, b',"OnError":', 11)
    _w_signatures(w, _field(sig, F_ON_ERROR), depth + 1)
    _w_raw(w, b',"ChordCallback":', 17)
    chord = _field(sig, F_CHORD)
    if chord is None:
        _w_raw(w, b"null", 4)
    else:
        _w_signature(w, chord, depth + 1)
    return _w_raw(w, b"}", 1)




cdef bytes _encode_fast(object signature):
    cdef char stack[STACK_BUFFER]
    cdef Writer w
    w.buf = stack
    w.len = 0
    w.cap = STACK_BUFFER
    w.heap = False
    try:
        _w_signature(&w, signature, 1)
        return PyBytes_FromStringAndSize(w.buf, w.len)
    finally:
        if w.heap:
            PyMem_Free(w.buf)


def encode(signature):
    """The wire message for ``signature``: compact UTF-8 JSON; ``EncodeError`` when it cannot be."""
    try:
        return _encode_fast(signature)
    except Exception:
        pass
    return _py_encode(signature)  # raises the twin's error, with its message


def _encode_strict(signature):
    """The compiled writer alone, without handing over to the twin (for tests)."""
    return _encode_fast(signature)


# == decoding ===================================================================================

ctypedef struct Parser:
    const unsigned char* s  # the message; s[end] is the NUL every bytes object ends with
    Py_ssize_t pos
    Py_ssize_t end


cdef int _fail(Parser* p, str what) except -1:
    raise DecodeError(f"message: {what} at byte {p.pos}")


cdef inline void _ws(Parser* p) noexcept:
    cdef const unsigned char* s = p.s
    cdef Py_ssize_t i = p.pos
    while s[i] == 0x20 or s[i] == 0x0A or s[i] == 0x0D or s[i] == 0x09:
        i += 1
    p.pos = i


cdef inline bint _is_digit(unsigned char c) noexcept:
    return 0x30 <= c <= 0x39


cdef int _literal(Parser* p, const char* word, Py_ssize_t n) except -1:
    if p.end - p.pos < n or memcmp(p.s + p.pos, word, n) != 0:
        _fail(p, "invalid literal")
    p.pos += n
    return 0


cdef int _hex4(Parser* p, Py_ssize_t i) except -1:
    """The value of the four hex digits at ``i`` (the caller made sure they are in the string)."""
    cdef int value = 0
    cdef unsigned char c
    cdef Py_ssize_t k
    for k in range(4):
        c = p.s[i + k]
        if 0x30 <= c <= 0x39:
            value = (value << 4) | (c - 0x30)
        elif 0x61 <= c <= 0x66:
            value = (value << 4) | (c - 0x61 + 10)
        elif 0x41 <= c <= 0x46:
            value = (value << 4) | (c - 0x41 + 10)
        else:
            _fail(p, "invalid \\uXXXX escape")
    return value




cdef object _string_slow(Parser* p, Py_ssize_t start, bint build):
    """A string with escapes or non-ASCII text, from ``start`` (after the quote): strict UTF-8,
    json's escapes, surrogate pairs joined; a lone surrogate is refused (the twin decides)."""
    cdef const unsigned char* s = p.s
    cdef Py_ssize_t i = start, close, j, n = 0
    cdef unsigned char c, c1, c2, c3
    cdef ucs4 cp = 0
    cdef int low
    cdef ucs4 stack[STACK_CHARS]
    cdef ucs4* out = stack
    # Find the closing quote.
    while True:
        c = s[i]
        if c == 0x22:
            break
        if c == 0x5C:
            if i + 1 >= p.end:
                p.pos = i
                _fail(p, "unterminated string")
            i += 2
        elif c < 0x20:
            p.pos = i
            _fail(p, "invalid control character or unterminated string")
        else:
            i += 1
    close = i
    if build and close - start > STACK_CHARS:
        out = <ucs4*>PyMem_Malloc((close - start) * sizeof(ucs4))
        if out == NULL:
            raise MemoryError()
    try:
        j = start
        while j < close:
            c = s[j]
            if c == 0x5C:
                c1 = s[j + 1]
                j += 2
                if c1 == 0x22 or c1 == 0x5C or c1 == 0x2F:
                    cp = c1
                elif c1 == 0x62:
                    cp = 0x08
                elif c1 == 0x66:
                    cp = 0x0C
                elif c1 == 0x6E:
                    cp = 0x0A
                elif c1 == 0x72:
                    cp = 0x0D
                elif c1 == 0x74:
                    cp = 0x09
                elif c1 == 0x75:
                    if j + 4 > close:
                        p.pos = j
                        _fail(p, "invalid \\uXXXX escape")
                    cp = <ucs4>_hex4(p, j)
                    j += 4
                    if 0xD800 <= cp <= 0xDBFF and j + 6 <= close and s[j] == 0x5C and s[j + 1] == 0x75:
                        low = _hex4(p, j + 2)
                        if 0xDC00 <= low <= 0xDFFF:
                            cp = 0x10000 + (((cp - 0xD800) << 10) | (low - 0xDC00))
                            j += 6
                    if 0xD800 <= cp <= 0xDFFF:
                        p.pos = j
                        _fail(p, "lone surrogate")
                else:
                    p.pos = j
                    _fail(p, "invalid escape")
            elif c < 0x80:
                cp = c
                j += 1
            elif 0xC2 <= c <= 0xDF:
                c1 = s[j + 1]
                if not (0x80 <= c1 <= 0xBF):
                    p.pos = j
                    _fail(p, "not UTF-8")
                cp = ((c & 0x1F) << 6) | (c1 & 0x3F)
                j += 2
            elif 0xE0 <= c <= 0xEF:
                c1 = s[j + 1]
                if c == 0xE0:
                    low = 0xA0 <= c1 <= 0xBF
                elif c == 0xED:
                    low = 0x80 <= c1 <= 0x9F
                else:
                    low = 0x80 <= c1 <= 0xBF
                if not low:
                    p.pos = j
                    _fail(p, "not UTF-8")
                c2 = s[j + 2]
                if not (0x80 <= c2 <= 0xBF):
                    p.pos = j
                    _fail(p, "not UTF-8")
                cp = ((c & 0x0F) << 12) | ((c1 & 0x3F) << 6) | (c2 & 0x3F)
                j += 3
            elif 0xF0 <= c <= 0xF4:
                c1 = s[j + 1]
                if c == 0xF0:
                    low = 0x90 <= c1 <= 0xBF
                elif c == 0xF4:
                    low = 0x80 <= c1 <= 0x8F
                else:
                    low = 0x80 <= c1 <= 0xBF
                if not low:
                    p.pos = j
                    _fail(p, "not UTF-8")
                c2 = s[j + 2]
                if not (0x80 <= c2 <= 0xBF):
                    p.pos = j
                    _fail(p, "not UTF-8")
                c3 = s[j + 3]
                if not (0x80 <= c3 <= 0xBF):
                    p.pos = j
                    _fail(p, "not UTF-8")
                cp = ((c & 0x07) << 18) | ((c1 & 0x3F) << 12) | ((c2 & 0x3F) << 6) | (c3 & 0x3F)
                j += 4
            else:
                p.pos = j
                _fail(p, "not UTF-8")
            if build:
                out[n] = cp
                n += 1
        p.pos = close + 1
        if not build:
            return None
        return PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, out, n)
    finally:
        if out != stack:
            PyMem_Free(out)


cdef object _string(Parser* p, bint build):
    """The JSON string at ``p.pos`` (its opening quote) as a str, or None when not ``build``."""
    cdef const unsigned char* s = p.s
    cdef Py_ssize_t start = p.pos + 1, i = start, n
    while PLAIN[s[i]]:
        i += 1
    if s[i] != 0x22:
        return _string_slow(p, start, build)
    p.pos = i + 1
    if not build:
        return None
    n = i - start
    if n == 0:
        return _EMPTY_STR
    text = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(text), s + start, n)
    return text




cdef object _number(Parser* p, bint build):
    """The JSON number at ``p.pos``: int or float as Python's json reads it. Floats that overflow
    and ints past Python's int-digits limit are DecodeErrors (json.loads refuses them too)."""
    cdef const unsigned char* s = p.s
    cdef Py_ssize_t start = p.pos, i = p.pos, int_end, ndigits, j
    cdef bint neg = False, is_float = False
    cdef unsigned long long acc = 0
    cdef char stack[FLOAT_STACK]
    cdef char* buf
    cdef double x
    if s[i] == 0x2D:
        neg = True
        i += 1
    if s[i] == 0x30:
        i += 1
    elif 0x31 <= s[i] <= 0x39:
        i += 1
        while _is_digit(s[i]):
            i += 1
    else:
        p.pos = i
        _fail(p, "expecting a value")
    int_end = i
    if s[i] == 0x2E and _is_digit(s[i + 1]):
        is_float = True
        i += 2
        while _is_digit(s[i]):
            i += 1
    if s[i] == 0x65 or s[i] == 0x45:
        j = i + 1
        if s[j] == 0x2B or s[j] == 0x2D:
            j += 1
        if _is_digit(s[j]):
            is_float = True
            i = j + 1
            while _is_digit(s[i]):
                i += 1
    p.pos = i
    if not is_float:
        ndigits = int_end - start - neg
        if ndigits <= 18:
            if not build:
                return None
            for j in range(start + neg, int_end):
                acc = acc * 10 + (s[j] - 0x30)
            if neg:
                return PyLong_FromLongLong(-<long long>acc)
            return PyLong_FromLongLong(<long long>acc)
        if not build and ndigits <= 640:  # below the smallest int-digits limit Python allows
            return None
    n = i - start
    buf = stack
    if n + 1 > FLOAT_STACK:
        buf = <char*>PyMem_Malloc(n + 1)
        if buf == NULL:
            raise MemoryError()
    try:
        memcpy(buf, s + start, n)
        buf[n] = 0
        if not is_float:
            try:
                value = PyLong_FromString(buf, NULL, 10)
            except ValueError:
                _fail(p, "integer past the int-digits limit")
            return value if build else None
        x = PyOS_string_to_double(buf, NULL, NULL)
        if not isfinite(x):
            _fail(p, "number out of range")
        return PyFloat_FromDouble(x) if build else None
    finally:
        if buf != stack:
            PyMem_Free(buf)


cdef inline int _expect_colon(Parser* p) except -1:
    _ws(p)
    if p.s[p.pos] != 0x3A:
        _fail(p, "expecting ':'")
    p.pos += 1
    _ws(p)
    return 0


cdef inline bint _next_item(Parser* p, unsigned char close) except -1:
    """After a value in an array or object: True when a ``,`` follows, False at ``close``."""
    _ws(p)
    cdef unsigned char c = p.s[p.pos]
    if c == 0x2C:
        p.pos += 1
        _ws(p)
        return True
    if c == close:
        p.pos += 1
        return False
    _fail(p, "expecting ',' or a closing bracket")
    return False


cdef int _skip(Parser* p, int depth) except -1:
    """Validate the JSON value at ``p.pos`` and step over it; containers at ``depth``."""
    cdef unsigned char c = p.s[p.pos]
    if c == 0x22:
        _string(p, False)
    elif c == 0x7B:
        if depth > MAX_DEPTH:
            _fail(p, "nested too deep")
        p.pos += 1
        _ws(p)
        if p.s[p.pos] == 0x7D:
            p.pos += 1
            return 0
        while True:
            if p.s[p.pos] != 0x22:
                _fail(p, "expecting a key")
            _string(p, False)
            _expect_colon(p)
            _skip(p, depth + 1)
            if not _next_item(p, 0x7D):
                return 0
    elif c == 0x5B:
        if depth > MAX_DEPTH:
            _fail(p, "nested too deep")
        p.pos += 1
        _ws(p)
        if p.s[p.pos] == 0x5D:
            p.pos += 1
            return 0
        while True:
            _skip(p, depth + 1)
            if not _next_item(p, 0x5D):
                return 0
    elif c == 0x74:
        _literal(p, b"true", 4)
    elif c == 0x66:
        _literal(p, b"false", 5)
    elif c == 0x6E:
        _literal(p, b"null", 4)
    else:
        _number(p, False)
    return 0


# A growable array of owned references, turned into a tuple at the end.

ctypedef struct ObjVec:
    PyObject** items
    Py_ssize_t n
    Py_ssize_t cap
    PyObject* inline_items[VEC_INLINE]


cdef inline void _vec_init(ObjVec* v) noexcept:
    v.items = v.inline_items
    v.n = 0
    v.cap = VEC_INLINE


cdef int _vec_push(ObjVec* v, object item) except -1:
    cdef PyObject** grown
    if v.n == v.cap:
        if v.items == v.inline_items:
            grown = <PyObject**>PyMem_Malloc(v.cap * 2 * sizeof(PyObject*))
            if grown != NULL:
                memcpy(grown, v.items, v.n * sizeof(PyObject*))
        else:
            grown = <PyObject**>PyMem_Realloc(v.items, v.cap * 2 * sizeof(PyObject*))
        if grown == NULL:
            raise MemoryError()
        v.items = grown
        v.cap *= 2
    Py_INCREF(item)
    v.items[v.n] = <PyObject*>item
    v.n += 1
    return 0


cdef tuple _vec_tuple(ObjVec* v):
    """The items as a tuple; the references move into it."""
    cdef Py_ssize_t i
    if v.n == 0:
        return _EMPTY_TUPLE
    t = _new_tuple(v.n)
    for i in range(v.n):
        _tuple_set(t, i, v.items[i])
    v.n = 0
    return t


cdef void _vec_clear(ObjVec* v) noexcept:
    cdef Py_ssize_t i
    for i in range(v.n):
        Py_XDECREF(v.items[i])
    v.n = 0
    if v.items != v.inline_items:
        PyMem_Free(v.items)
        v.items = v.inline_items


cdef dict _dict(Parser* p, int depth):
    """The JSON object at ``p.pos`` as a dict of frozen values (duplicate keys: the last wins,
    in the first one's place, as in json)."""
    if depth > MAX_DEPTH:
        _fail(p, "nested too deep")
    cdef dict d = {}
    p.pos += 1
    _ws(p)
    if p.s[p.pos] == 0x7D:
        p.pos += 1
        return d
    while True:
        if p.s[p.pos] != 0x22:
            _fail(p, "expecting a key")
        key = _string(p, True)
        _expect_colon(p)
        d[key] = _value(p, depth + 1)
        if not _next_item(p, 0x7D):
            return d


cdef tuple _array(Parser* p, int depth):
    """The JSON array at ``p.pos`` as a tuple of frozen values."""
    if depth > MAX_DEPTH:
        _fail(p, "nested too deep")
    cdef ObjVec v
    _vec_init(&v)
    p.pos += 1
    _ws(p)
    if p.s[p.pos] == 0x5D:
        p.pos += 1
        return _EMPTY_TUPLE
    try:
        while True:
            _vec_push(&v, _value(p, depth + 1))
            if not _next_item(p, 0x5D):
                return _vec_tuple(&v)
    finally:
        _vec_clear(&v)


cdef object _value(Parser* p, int depth):
    """The JSON value at ``p.pos`` as a frozen value (tuple, FrozenDict, str, int, float, bool,
    None); containers at ``depth``."""
    cdef unsigned char c = p.s[p.pos]
    if c == 0x22:
        return _string(p, True)
    if c == 0x7B:
        return _wrap_dict(_dict(p, depth))
    if c == 0x5B:
        return _array(p, depth)
    if c == 0x74:
        _literal(p, b"true", 4)
        return True
    if c == 0x66:
        _literal(p, b"false", 5)
        return False
    if c == 0x6E:
        _literal(p, b"null", 4)
        return None
    return _number(p, True)


cdef object _NOT_TYPED = object()


cdef object _typed(dict d, int depth):
    """Go Machinery v1's typed argument ``d`` as a plain value (through the twin's ``typed_arg``),
    or ``_NOT_TYPED`` when ``d`` is not shaped like one."""
    cdef Py_ssize_t n = len(d)
    if n != 2 and n != 3:
        return _NOT_TYPED
    type_name = d.get("Type", _NOT_TYPED)
    if type(type_name) is not str or "Value" not in d:
        return _NOT_TYPED
    if n == 3:
        name = d.get("Name", _NOT_TYPED)
        if type(name) is not str:
            return _NOT_TYPED
    return typed_arg({key: thaw(value) for key, value in d.items()}, "message.Args", depth)


cdef tuple _args(Parser* p, int depth):
    """``Args``: the array at ``p.pos`` with typed Go v1 arguments turned into plain values."""
    if depth > MAX_DEPTH:
        _fail(p, "nested too deep")
    cdef ObjVec v
    _vec_init(&v)
    p.pos += 1
    _ws(p)
    if p.s[p.pos] == 0x5D:
        p.pos += 1
        return _EMPTY_TUPLE
    try:
        while True:
            if p.s[p.pos] == 0x7B:
                d = _dict(p, depth + 1)
                item = _typed(d, depth + 1)
                if item is _NOT_TYPED:
                    item = _wrap_dict(d)
                _vec_push(&v, item)
            else:
                _vec_push(&v, _value(p, depth + 1))
            if not _next_item(p, 0x5D):
                return _vec_tuple(&v)
    finally:
        _vec_clear(&v)


cdef tuple _signatures(Parser* p, int depth):
    """``OnSuccess``/``OnError``: the array at ``p.pos`` of signature objects."""
    if depth > MAX_DEPTH:
        _fail(p, "nested too deep")
    cdef ObjVec v
    _vec_init(&v)
    p.pos += 1
    _ws(p)
    if p.s[p.pos] == 0x5D:
        p.pos += 1
        return _EMPTY_TUPLE
    try:
        while True:
            _vec_push(&v, _signature(p, depth + 1))
            if not _next_item(p, 0x5D):
                return _vec_tuple(&v)
    finally:
        _vec_clear(&v)


# The wire keys in order, with their closing quote, to check the key a message most likely holds next.
cdef const char* KEY_TEXT[NFIELDS]
cdef Py_ssize_t KEY_LEN[NFIELDS]
_KEY_BYTES = tuple(key.encode("ascii") + b'"' for key, _slot in _FIELDS)  # keeps the texts alive
for _i in range(NFIELDS):
    KEY_TEXT[_i] = _KEY_BYTES[_i]
    KEY_LEN[_i] = len(_KEY_BYTES[_i])


cdef inline int _key_index(Parser* p, int guess) except -2:
    """The field index of the key at ``p.pos`` (its opening quote), or -1 for an unknown key;
    ``guess`` is the index the key most likely has (keys usually come in wire order)."""
    cdef Py_ssize_t start = p.pos + 1, n
    if guess < 0 or guess >= NFIELDS:
        return _key_index_scan(p)
    n = KEY_LEN[guess]
    if p.end - start >= n and memcmp(p.s + start, KEY_TEXT[guess], n) == 0:
        p.pos = start + n
        return guess
    return _key_index_scan(p)


cdef int _key_index_scan(Parser* p) except -2:
    cdef const unsigned char* s = p.s
    cdef Py_ssize_t start = p.pos + 1, i = start, n
    cdef const char* k
    while PLAIN[s[i]]:
        i += 1
    if s[i] != 0x22:
        return _KEY_INDEX.get(_string(p, True), -1)
    p.pos = i + 1
    n = i - start
    k = <const char*>(s + start)
    if n == 4:
        if memcmp(k, b"UUID", 4) == 0:
            return F_UUID
        if memcmp(k, b"Name", 4) == 0:
            return F_NAME
        if memcmp(k, b"Args", 4) == 0:
            return F_ARGS
    elif n == 3:
        if memcmp(k, b"ETA", 3) == 0:
            return F_ETA
    elif n == 7:
        if memcmp(k, b"Headers", 7) == 0:
            return F_HEADERS
        if memcmp(k, b"OnError", 7) == 0:
            return F_ON_ERROR
    elif n == 8:
        if memcmp(k, b"Priority", 8) == 0:
            return F_PRIORITY
    elif n == 9:
        if memcmp(k, b"GroupUUID", 9) == 0:
            return F_GROUP_UUID
        if memcmp(k, b"Immutable", 9) == 0:
            return F_IMMUTABLE
        if memcmp(k, b"OnSuccess", 9) == 0:
            return F_ON_SUCCESS
    elif n == 10:
        if memcmp(k, b"RoutingKey", 10) == 0:
            return F_ROUTING_KEY
        if memcmp(k, b"RetryCount", 10) == 0:
            return F_RETRY_COUNT
    elif n == 12:
        if memcmp(k, b"RetryTimeout", 12) == 0:
            return F_RETRY_TIMEOUT
    elif n == 13:
        if memcmp(k, b"ChordCallback", 13) == 0:
            return F_CHORD
    elif n == 14:
        if memcmp(k, b"GroupTaskCount", 14) == 0:
            return F_GROUP_TASK_COUNT
    return -1


cdef object _count(Parser* p, long high):
    """A count field: a non-negative JSON integer (at most ``high`` when ``high >= 0``) or null."""
    cdef unsigned char c = p.s[p.pos]
    if c == 0x6E:
        _literal(p, b"null", 4)
        return 0
    if c == 0x2D or _is_digit(c):
        value = _number(p, True)
        if type(value) is int and value >= 0 and (high < 0 or value <= high):
            return value
    _fail(p, "expected a non-negative integer")


cdef object _field_value(Parser* p, int index, int depth):
    """The value of field ``index`` of the signature object at ``depth``, validated as the twin
    validates it; the value of an absent field for null."""
    cdef unsigned char c = p.s[p.pos]
    cdef Py_ssize_t start = p.pos
    if index == F_UUID or index == F_ROUTING_KEY or index == F_GROUP_UUID:
        if c == 0x22:
            return _string(p, True)
        _literal(p, b"null", 4)
        return _EMPTY_STR
    if index == F_NAME:
        if c == 0x22:
            name = _string(p, True)
            if PyUnicode_GET_LENGTH(name) > 0:
                return name
        _fail(p, "Name must be a non-empty string")
    if index == F_ARGS:
        if c == 0x5B:
            return _args(p, depth + 1)
        _literal(p, b"null", 4)
        return _EMPTY_TUPLE
    if index == F_GROUP_TASK_COUNT or index == F_RETRY_COUNT or index == F_RETRY_TIMEOUT:
        return _count(p, -1)
    if index == F_PRIORITY:
        return _count(p, MAX_PRIORITY)
    if index == F_IMMUTABLE:
        if c == 0x74:
            _literal(p, b"true", 4)
            return True
        if c == 0x66:
            _literal(p, b"false", 5)
            return False
        _literal(p, b"null", 4)
        return False
    if index == F_ON_SUCCESS or index == F_ON_ERROR:
        if c == 0x5B:
            return _signatures(p, depth + 1)
        _literal(p, b"null", 4)
        return _EMPTY_TUPLE
    if index == F_HEADERS:
        if c == 0x7B:
            p.pos += 1
            _ws(p)
            if p.s[p.pos] == 0x7D:  # {}: no dict to build
                p.pos += 1
                return _EMPTY_DICT
            p.pos = start
            d = _dict(p, depth + 1)
            return _wrap_dict(d) if d else _EMPTY_DICT
        _literal(p, b"null", 4)
        return _EMPTY_DICT
    if index == F_ETA:
        if c == 0x22:
            return parse_eta(_string(p, True), "message.ETA")
        _literal(p, b"null", 4)
        return None
    if c == 0x7B:  # F_CHORD
        return _signature(p, depth + 1)
    _literal(p, b"null", 4)
    return None


cdef object _signature(Parser* p, int depth):
    """The signature object at ``p.pos``, built without ``Signature.__init__``: the values are
    already validated and frozen exactly as ``__init__`` would leave them."""
    if p.s[p.pos] != 0x7B:
        _fail(p, "expected a JSON object")
    if depth > MAX_DEPTH:
        _fail(p, "nested too deep")
    cdef PyObject* values[NFIELDS]
    cdef int i, index = -1
    memset(values, 0, sizeof(values))
    p.pos += 1
    try:
        _ws(p)
        if p.s[p.pos] == 0x7D:
            p.pos += 1
        else:
            while True:
                if p.s[p.pos] != 0x22:
                    _fail(p, "expecting a key")
                index = _key_index(p, index + 1)
                _expect_colon(p)
                if index < 0:
                    _skip(p, depth + 1)
                else:
                    value = _field_value(p, index, depth)
                    Py_INCREF(value)
                    Py_XDECREF(values[index])
                    values[index] = <PyObject*>value
                if not _next_item(p, 0x7D):
                    break
        if values[F_NAME] == NULL:
            _fail(p, "Name is required")
        sig = PyType_GenericAlloc(<PyTypeObject*>_Signature, 0)
        for i in range(NFIELDS):
            if values[i] != NULL:
                _init_slot(sig, SIG_OFF[i], <object>values[i])
            else:
                _init_slot(sig, SIG_OFF[i], <object>_tuple_get(_DEFAULTS, i))
        return sig
    finally:
        for i in range(NFIELDS):
            Py_XDECREF(values[i])


cdef object _decode_fast(object data):
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"message: expected bytes, got {type(data).__name__}")
        data = bytes(data)
    cdef Parser p
    p.s = <const unsigned char*>PyBytes_AS_STRING(data)
    p.pos = 0
    p.end = PyBytes_GET_SIZE(data)
    _ws(&p)
    sig = _signature(&p, 1)
    _ws(&p)
    if p.pos != p.end:
        _fail(&p, "extra data")
    return sig


def decode(data):
    """The Signature in wire message ``data``; ``DecodeError`` (and nothing else) when ``data`` is
    not UTF-8, not JSON, not an object, of the wrong schema or nested too deep."""
    try:
        return _decode_fast(data)
    except Exception:
        pass
    return _py_decode(data)  # the twin's value for rare shapes, else its error


def _decode_strict(data):
    """The compiled parser alone, without handing over to the twin (for tests)."""
    return _decode_fast(data)


# == number arguments ===========================================================================

cdef object _numbers_fast(object args):
    """``args`` (an exact list or tuple of exact ints and floats) as floats, or None when any
    item needs the twin (another type, or an int too large for a float)."""
    cdef Py_ssize_t i, n
    cdef bint is_list = type(args) is list
    cdef PyObject* item
    n = PyList_GET_SIZE(args) if is_list else len(<tuple>args)
    out = _new_list(n)
    for i in range(n):
        item = _list_get(args, i) if is_list else _tuple_get(args, i)
        if type(<object>item) is float:
            Py_INCREF(<object>item)
            _list_set(out, i, item)
        elif type(<object>item) is int:
            try:
                number = PyFloat_FromDouble(PyLong_AsDouble(<object>item))
            except OverflowError:
                return None  # the twin says why; the unfilled items are NULL, which a list may hold
            Py_INCREF(number)
            _list_set(out, i, <PyObject*>number)
        else:
            return None
    return out


def parse_number_args(args):
    """``args`` as floats (the seed's ``ParseNumberArgs``): ints and floats are accepted; bools,
    strings, None and everything else raise ``ArgumentError`` naming the position and type."""
    cdef object t = type(args)
    if t is list or t is tuple:
        out = _numbers_fast(args)
        if out is not None:
            return out
    return _py_parse_number_args(args)
