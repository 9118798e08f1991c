# Included by _codec_c.pyx (one extension, split by concern); not compiled on its own.
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
