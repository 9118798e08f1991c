"""JSON values as immutable Python values: the only things a task message may carry.

A message's args and headers are JSON. Inside a :class:`~machinery.Signature` they are frozen:
arrays become tuples and objects become :class:`FrozenDict`, so nothing reachable from a signature
can be changed after it was built.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeAlias, Union

__all__ = [
    "EMPTY_DICT",
    "FrozenDict",
    "JSON",
    "JSONInput",
    "JSONValue",
    "MAX_DEPTH",
    "freeze",
    "freeze_mapping",
    "plain",
    "thaw",
]

#: The deepest nesting of JSON arrays and objects a message may hold, counted from the message's
#: own top-level object (depth 1). A chain adds two levels per step (an ``OnSuccess`` array and the
#: next signature object), so a chain of up to 120 steps fits.
MAX_DEPTH = 256

JSONValue: TypeAlias = Union[bool, int, float, str, bytes, tuple["JSONValue", ...], "FrozenDict", None]
"""A frozen JSON value, as stored in a Signature and handed to tasks. ``bytes`` is Go's ``[]byte``:
it travels as a base64 string in a typed argument, so only a top-level task argument may be bytes."""

JSON: TypeAlias = bool | int | float | str | list["JSON"] | dict[str, "JSON"] | None
"""A plain JSON value, as ``json.loads`` gives it: what ``AsyncResult.get()`` returns for an untyped task."""

JSONInput: TypeAlias = (
    bool | int | float | str | bytes | Sequence["JSONInput"] | Mapping[str, "JSONInput"] | None
)
"""What callers may pass where a JSON value is expected; it is frozen on the way in."""


class FrozenDict(Mapping[str, JSONValue]):
    """An immutable, hashable mapping of str to frozen JSON values (a JSON object)."""

    __slots__ = ("_data", "_hash")

    _data: dict[str, JSONValue]
    _hash: int | None

    def __init__(self, items: Mapping[str, JSONValue] | None = None) -> None:
        object.__setattr__(self, "_data", dict(items) if items else {})
        object.__setattr__(self, "_hash", None)

    @classmethod
    def _wrap(cls, data: dict[str, JSONValue]) -> FrozenDict:
        """Adopt ``data`` without copying; the caller gives up every reference to it."""
        self = cls.__new__(cls)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_hash", None)
        return self

    def __getitem__(self, key: str) -> JSONValue:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            h = hash(frozenset(self._data.items()))
            object.__setattr__(self, "_hash", h)
        return h

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("FrozenDict is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("FrozenDict is immutable")

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (FrozenDict, (self._data,))


EMPTY_DICT = FrozenDict()


def freeze(value: object, where: str = "value", _depth: int = 0) -> JSONValue:
    """Return ``value`` as a frozen JSON value, or raise ``TypeError`` naming ``where``.

    Lists and tuples become tuples, mappings with str keys become FrozenDict; subclasses of
    int, float and str are turned into the base type, bytes-like objects into ``bytes``. NaN and
    infinities are kept here (they are floats) and refused by the encoder.
    """
    t = type(value)
    if value is None or t is bool or t is int or t is float or t is str or t is bytes:
        return value  # type: ignore[return-value]
    if _depth >= MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if t is tuple or t is list:
        seq: Sequence[object] = value  # type: ignore[assignment]
        return tuple([freeze(v, f"{where}[{i}]", _depth + 1) for i, v in enumerate(seq)])
    if t is FrozenDict:
        return value  # type: ignore[return-value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Mapping):
        return freeze_mapping(value, where, _depth)
    if isinstance(value, (list, tuple)):
        return tuple([freeze(v, f"{where}[{i}]", _depth + 1) for i, v in enumerate(value)])
    raise TypeError(
        f"{where}: {type(value).__name__} is not a JSON value "
        "(expected None, bool, int, float, str, bytes, list, tuple or a mapping with str keys)"
    )


def freeze_mapping(value: Mapping[Any, object], where: str, _depth: int = 0) -> FrozenDict:
    """Freeze a mapping with str keys into a FrozenDict, or raise ``TypeError`` naming ``where``."""
    data: dict[str, JSONValue] = {}
    for key, v in value.items():
        if type(key) is str:
            k = key
        elif isinstance(key, str):
            k = str(key)
        else:
            raise TypeError(f"{where}: key {key!r} is {type(key).__name__}, JSON keys must be str")
        data[k] = freeze(v, f"{where}[{k!r}]", _depth + 1)
    return FrozenDict._wrap(data)


def plain(value: JSONValue) -> JSON:
    """``value`` as plain JSON: tuples become lists, FrozenDicts dicts (copies all the way down),
    bytes base64 text."""
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, FrozenDict):
        return {k: plain(v) for k, v in value._data.items()}
    if isinstance(value, bytes):  # Go's []byte, as JSON carries it
        return base64.b64encode(value).decode("ascii")
    return value


def thaw(value: object) -> object:
    """Return a mutable copy of a frozen value: tuples become lists, FrozenDicts dicts."""
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    if isinstance(value, FrozenDict):
        return {k: thaw(v) for k, v in value.items()}
    return value

