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
from machinery.signature import MAX_PRIORITY as _PY_MAX_PRIORITY, Signature

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


include "_slots.pxi"


include "_writer.pxi"


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


include "_parser.pxi"
include "_schema.pxi"


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
    """``args`` as floats: ints and floats are accepted; bools,
    strings, None and everything else raise ``ArgumentError`` naming the position and type."""
    cdef object t = type(args)
    if t is list or t is tuple:
        out = _numbers_fast(args)
        if out is not None:
            return out
    return _py_parse_number_args(args)
