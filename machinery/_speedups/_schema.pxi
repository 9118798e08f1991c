# Included by _codec_c.pyx (one extension, split by concern); not compiled on its own.
# The message schema on top of the JSON reader of _parser.pxi: fields, callbacks, typed Go args.

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
