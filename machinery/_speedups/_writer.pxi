# Included by _codec_c.pyx (one extension, split by concern); not compiled on its own.
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
