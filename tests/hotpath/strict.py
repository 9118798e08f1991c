"""Type-aware equality for decoded values: ``1 == 1.0 == True`` in Python, not on the wire."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from machinery.jsonvalues import FrozenDict
from machinery.signature import Signature


def same_value(a: object, b: object) -> bool:
    """True when ``a`` and ``b`` are equal with the same types all the way down (floats by repr,
    so ``-0.0`` differs from ``0.0``; FrozenDicts with their keys in the same order)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, datetime):
        assert isinstance(b, datetime)
        return a == b and a.tzinfo == b.tzinfo
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, tuple):
        assert isinstance(b, tuple)
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, FrozenDict):
        assert isinstance(b, FrozenDict)
        return list(a) == list(b) and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, Signature):
        assert isinstance(b, Signature)
        return all(same_value(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(Signature))
    return a == b
