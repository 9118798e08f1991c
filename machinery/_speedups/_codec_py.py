"""The pure-Python codec: the reference for the compiled one in ``_codec_c.pyx``.

``encode`` writes a Signature as the JSON wire message that README.md describes (compact, UTF-8, keys in a
fixed order, empty callback lists as ``null``); ``decode`` reads one back, accepting plain
JSON args and Go Machinery v1's typed args. Both raise only their own error class on bad input.
The compiled module must give the same bytes, the same values and the same error classes.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from machinery.errors import ArgumentError, DecodeError, EncodeError
from machinery.jsonvalues import EMPTY_DICT, MAX_DEPTH, FrozenDict, JSONValue
from machinery.signature import MAX_PRIORITY, Signature

__all__ = ["bytes_arg", "decode", "encode", "format_eta", "parse_eta", "parse_number_args", "typed_arg"]

# -- ETA (RFC 3339) ---------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def format_eta(eta: datetime) -> str:
    """``eta`` in UTC as RFC 3339 with ``Z``; the fraction is written only when not zero, without
    trailing zeros (as Go's ``RFC3339Nano``)."""
    u = eta.astimezone(timezone.utc)
    text = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    if u.microsecond:
        text += f".{u.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_eta(text: str, where: str = "ETA") -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime (fractions past microseconds are
    truncated); ``DecodeError`` when it is not one."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise DecodeError(f"{where}: {text[:64]!r} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7)
    micro = int((frac + "000000")[:6]) if frac else 0
    try:
        if m.group(8):
            return datetime(year, month, day, hour, minute, second, micro, timezone.utc)
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        if offset >= timedelta(hours=24):
            raise ValueError("offset out of range")
        tz = timezone(-offset if m.group(9) == "-" else offset)
        return datetime(year, month, day, hour, minute, second, micro, tz).astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise DecodeError(f"{where}: {text[:64]!r} is not a valid time ({exc})") from None


# -- encoding ---------------------------------------------------------------------------------


def _wire_value(value: object, where: str, depth: int) -> object:
    t = type(value)
    if t is str:
        return value
    if t is int or t is bool or value is None:
        return value
    if t is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise EncodeError(f"{where}: {value!r} is not a JSON number")
        return value
    if t is tuple or t is FrozenDict:
        if depth > MAX_DEPTH:
            raise EncodeError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if t is tuple:
            items: tuple[object, ...] = value  # type: ignore[assignment]
            return [_wire_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(items)]
        out: dict[str, object] = {}
        for k, v in value.items():  # type: ignore[attr-defined]
            if type(k) is not str:
                raise EncodeError(f"{where}: key {k!r} is not a str")
            out[k] = _wire_value(v, f"{where}[{k!r}]", depth + 1)
        return out
    if t is bytes:
        raise EncodeError(f"{where}: bytes can only be a task argument itself (Go's []byte), not inside one")
    raise EncodeError(f"{where}: {type(value).__name__} is not a JSON value")


def bytes_arg(value: bytes) -> dict[str, object]:
    """A ``bytes`` argument as Go Machinery v1's typed ``[]byte`` argument (a base64 string, as Go's
    ``encoding/json`` writes a ``[]byte``)."""
    return {"Name": "", "Type": "[]byte", "Value": base64.b64encode(value).decode("ascii")}


def _wire_args(args: tuple[object, ...], where: str, depth: int) -> list[object]:
    if depth > MAX_DEPTH:
        raise EncodeError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    return [
        bytes_arg(v) if type(v) is bytes else _wire_value(v, f"{where}[{i}]", depth + 1)
        for i, v in enumerate(args)
    ]


def _wire_signatures(sigs: object, where: str, depth: int) -> list[object] | None:
    if type(sigs) is not tuple:
        raise EncodeError(f"{where}: expected a tuple of Signatures, got {type(sigs).__name__}")
    if not sigs:
        return None
    if depth > MAX_DEPTH:
        raise EncodeError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    return [_wire_signature(s, f"{where}[{i}]", depth + 1) for i, s in enumerate(sigs)]


def _wire_str(value: object, where: str) -> str:
    if type(value) is not str:
        raise EncodeError(f"{where}: expected str, got {type(value).__name__}")
    return value


def _wire_int(value: object, where: str) -> int:
    if type(value) is not int:
        raise EncodeError(f"{where}: expected int, got {type(value).__name__}")
    return value


def _wire_signature(sig: object, where: str, depth: int) -> dict[str, object]:
    if type(sig) is not Signature:
        raise EncodeError(f"{where}: expected a Signature, got {type(sig).__name__}")
    if depth > MAX_DEPTH:
        raise EncodeError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    eta = sig.eta
    if eta is not None and not isinstance(eta, datetime):
        raise EncodeError(f"{where}.ETA: expected a datetime, got {type(eta).__name__}")
    args = sig.args
    if type(args) is not tuple:
        raise EncodeError(f"{where}.Args: expected a tuple, got {type(args).__name__}")
    if type(sig.immutable) is not bool:
        raise EncodeError(f"{where}.Immutable: expected bool, got {type(sig.immutable).__name__}")
    headers = sig.headers
    if type(headers) is not FrozenDict:
        raise EncodeError(f"{where}.Headers: expected a FrozenDict, got {type(headers).__name__}")
    chord = sig.chord_callback
    return {
        "UUID": _wire_str(sig.uuid, f"{where}.UUID"),
        "Name": _wire_str(sig.name, f"{where}.Name"),
        "RoutingKey": _wire_str(sig.routing_key, f"{where}.RoutingKey"),
        "ETA": None if eta is None else format_eta(eta),
        "GroupUUID": _wire_str(sig.group_uuid, f"{where}.GroupUUID"),
        "GroupTaskCount": _wire_int(sig.group_task_count, f"{where}.GroupTaskCount"),
        "Args": _wire_args(args, f"{where}.Args", depth + 1),
        "Headers": _wire_value(headers, f"{where}.Headers", depth + 1),
        "Priority": _wire_int(sig.priority, f"{where}.Priority"),
        "Immutable": sig.immutable,
        "RetryCount": _wire_int(sig.retry_count, f"{where}.RetryCount"),
        "RetryTimeout": _wire_int(sig.retry_timeout, f"{where}.RetryTimeout"),
        "OnSuccess": _wire_signatures(sig.on_success, f"{where}.OnSuccess", depth + 1),
        "OnError": _wire_signatures(sig.on_error, f"{where}.OnError", depth + 1),
        "ChordCallback": None if chord is None else _wire_signature(chord, f"{where}.ChordCallback", depth + 1),
    }


def encode(signature: Signature) -> bytes:
    """The wire message for ``signature``: compact UTF-8 JSON; ``EncodeError`` when it cannot be."""
    obj = _wire_signature(signature, "message", 1)
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError) as exc:  # pragma: no cover - guarded above
        raise EncodeError(f"message: {exc}") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise EncodeError("message: a string holds a lone surrogate, which UTF-8 cannot carry") from None


# -- decoding ---------------------------------------------------------------------------------


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


def _check_text(value: str, where: str) -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise DecodeError(f"{where}: string holds a lone surrogate") from None
    return value


def _frozen(value: object, where: str, depth: int) -> JSONValue:
    """A value parsed by ``json`` as a frozen value, checking depth and strings."""
    t = type(value)
    if t is str:
        return _check_text(value, where)  # type: ignore[arg-type]
    if value is None or t is int or t is float or t is bool:
        return value  # type: ignore[return-value]
    if depth > MAX_DEPTH:
        raise DecodeError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if t is list:
        elements: list[object] = value  # type: ignore[assignment]
        return tuple([_frozen(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(elements)])
    data: dict[str, JSONValue] = {}
    for k, v in value.items():  # type: ignore[attr-defined]
        data[_check_text(k, where)] = _frozen(v, f"{where}[{k!r}]", depth + 1)
    return FrozenDict._wrap(data)


_INT_RANGES: dict[str, tuple[int, int]] = {
    "int": (-(2**63), 2**63 - 1),
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint": (0, 2**64 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}
#: Go's names for a byte slice: a task argument of these types is ``bytes`` here.
_BYTES_TYPES = frozenset({"[]byte", "[]uint8"})
_TYPED_ARG_KEYS = (frozenset({"Name", "Type", "Value"}), frozenset({"Type", "Value"}))


def _typed_value(type_name: str, value: object, where: str, depth: int) -> JSONValue:
    vt = type(value)
    if type_name == "bool":
        if vt is bool:
            return value  # type: ignore[return-value]
    elif type_name in _INT_RANGES:
        if vt is int:
            low, high = _INT_RANGES[type_name]
            if not low <= value <= high:  # type: ignore[operator]
                raise DecodeError(f"{where}: {value} is out of range for {type_name}")
            return value  # type: ignore[return-value]
    elif type_name in {"float32", "float64"}:
        if vt is int or vt is float:
            try:
                return float(value)  # type: ignore[arg-type]
            except OverflowError:
                raise DecodeError(f"{where}: {_short_repr(value)} is out of range for {type_name}") from None
    elif type_name == "string":
        if vt is str:
            return _check_text(value, where)  # type: ignore[arg-type]
    elif type_name.startswith("[]"):
        inner = type_name[2:]
        if value is None:
            return ()
        if vt is list:
            if depth > MAX_DEPTH:
                raise DecodeError(f"{where}: nested deeper than {MAX_DEPTH} levels")
            elements: list[object] = value  # type: ignore[assignment]
            return tuple([_typed_value(inner, v, f"{where}[{i}]", depth + 1) for i, v in enumerate(elements)])
    else:
        raise DecodeError(f"{where}: unsupported Go argument type {type_name[:40]!r}")
    raise DecodeError(f"{where}: value of type {vt.__name__} does not fit Go type {type_name!r}")


def _go_bytes(value: object, where: str) -> bytes:
    """Go's ``[]byte``/``[]uint8`` value: a base64 string (what Go's ``encoding/json`` writes) or an
    array of integers 0..255."""
    if type(value) is str:
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise DecodeError(f"{where}: {_short_repr(value)} is not base64 (Go's []byte)") from None
    if type(value) is list:
        items: list[object] = value
        for i, v in enumerate(items):
            if type(v) is not int:
                raise DecodeError(f"{where}[{i}]: value of type {type(v).__name__} does not fit Go type uint8")
            if not 0 <= v <= 255:
                raise DecodeError(f"{where}[{i}]: {v} is out of range for uint8")
        return bytes(items)  # type: ignore[arg-type]
    raise DecodeError(f"{where}: value of type {type(value).__name__} does not fit Go type []byte")


def typed_arg(obj: dict[str, object], where: str, depth: int) -> JSONValue | None:
    """Go Machinery v1's ``{"Name","Type","Value"}`` argument as a plain value, or None when
    ``obj`` is not shaped like one (then it is an ordinary JSON object argument)."""
    if len(obj) not in (2, 3) or frozenset(obj) not in _TYPED_ARG_KEYS:
        return None
    type_name = obj["Type"]
    if type(type_name) is not str or ("Name" in obj and type(obj["Name"]) is not str):
        return None
    if type_name in _BYTES_TYPES:
        return b"" if obj["Value"] is None else _go_bytes(obj["Value"], where)
    return _typed_value(type_name, obj["Value"], where, depth)


def _array_or_null(value: object, where: str, depth: int) -> list[object]:
    """``value`` as a list (``null``: empty), or ``DecodeError`` when it is not an array or is
    nested too deep."""
    if value is None:
        return []
    if type(value) is not list:
        raise DecodeError(f"{where}: expected an array or null, got {_json_type(value)}")
    if depth > MAX_DEPTH:
        raise DecodeError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    return value


def _decode_args(value: object, where: str, depth: int) -> tuple[JSONValue, ...]:
    value = _array_or_null(value, where, depth)
    if not value:
        return ()
    out: list[JSONValue] = []
    for i, item in enumerate(value):
        item_where = f"{where}[{i}]"
        if type(item) is dict:
            typed = typed_arg(item, item_where, depth + 1)
            if typed is not None:
                out.append(typed)
                continue
        out.append(_frozen(item, item_where, depth + 1))
    return tuple(out)


def _json_type(value: object) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _field_str(obj: dict[str, object], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if type(value) is not str:
        raise DecodeError(f"{where}.{key}: expected a string, got {_json_type(value)}")
    return _check_text(value, f"{where}.{key}")


def _field_int(obj: dict[str, object], key: str, where: str, high: int | None = None) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    if type(value) is not int:
        raise DecodeError(f"{where}.{key}: expected an integer, got {_json_type(value)}")
    if value < 0 or (high is not None and value > high):
        raise DecodeError(f"{where}.{key}: {value} is out of range")
    return value


def _field_signatures(obj: dict[str, object], key: str, where: str, depth: int) -> tuple[Signature, ...]:
    value = _array_or_null(obj.get(key), f"{where}.{key}", depth)
    return tuple([_signature(v, f"{where}.{key}[{i}]", depth + 1) for i, v in enumerate(value)])


def _signature(obj: object, where: str, depth: int) -> Signature:
    if type(obj) is not dict:
        raise DecodeError(f"{where}: expected a JSON object, got {_json_type(obj)}")
    if depth > MAX_DEPTH:
        raise DecodeError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    name = obj.get("Name")
    if type(name) is not str or not name:
        raise DecodeError(f"{where}.Name: a non-empty string is required")
    _check_text(name, f"{where}.Name")
    immutable = obj.get("Immutable")
    if immutable is None:
        immutable = False
    elif type(immutable) is not bool:
        raise DecodeError(f"{where}.Immutable: expected true or false, got {_json_type(immutable)}")
    eta_text = obj.get("ETA")
    if eta_text is None:
        eta = None
    elif type(eta_text) is str:
        eta = parse_eta(eta_text, f"{where}.ETA")
    else:
        raise DecodeError(f"{where}.ETA: expected an RFC 3339 string or null, got {_json_type(eta_text)}")
    headers_obj = obj.get("Headers")
    if headers_obj is None:
        headers: FrozenDict = EMPTY_DICT
    elif type(headers_obj) is dict:
        headers = _frozen(headers_obj, f"{where}.Headers", depth + 1)  # type: ignore[assignment]
    else:
        raise DecodeError(f"{where}.Headers: expected an object or null, got {_json_type(headers_obj)}")
    chord_obj = obj.get("ChordCallback")
    chord = None if chord_obj is None else _signature(chord_obj, f"{where}.ChordCallback", depth + 1)
    try:
        return Signature(
            name,
            _decode_args(obj.get("Args"), f"{where}.Args", depth + 1),
            uuid=_field_str(obj, "UUID", where),
            routing_key=_field_str(obj, "RoutingKey", where),
            eta=eta,
            group_uuid=_field_str(obj, "GroupUUID", where),
            group_task_count=_field_int(obj, "GroupTaskCount", where),
            headers=headers,
            priority=_field_int(obj, "Priority", where, MAX_PRIORITY),
            immutable=immutable,
            retry_count=_field_int(obj, "RetryCount", where),
            retry_timeout=_field_int(obj, "RetryTimeout", where),
            on_success=_field_signatures(obj, "OnSuccess", where, depth + 1),
            on_error=_field_signatures(obj, "OnError", where, depth + 1),
            chord_callback=chord,
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"{where}: {exc}") from None


def decode(data: bytes) -> Signature:
    """The Signature in wire message ``data``; ``DecodeError`` (and nothing else) when ``data`` is
    not UTF-8, not JSON, not an object, of the wrong schema or nested too deep."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"message: expected bytes, got {type(data).__name__}")
    try:
        raw = bytes(data)
    except (ValueError, TypeError, BufferError) as exc:  # a released memoryview, for one
        raise DecodeError(f"message: cannot read the bytes ({exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"message: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float)
    except RecursionError:
        raise DecodeError(f"message: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise DecodeError(f"message: not JSON ({exc})") from None
    _check_nesting(text)
    return _signature(obj, "message", 1)


_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _check_nesting(text: str) -> None:
    """``DecodeError`` when arrays/objects in the JSON document ``text`` nest deeper than
    MAX_DEPTH anywhere, under keys the decoder ignores too (``text`` is known to be valid JSON)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        char = text[match.start()]
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise DecodeError(f"message: nested deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth -= 1


# -- number arguments -------------------------------------------------------------------------


def parse_number_args(args: Sequence[object]) -> list[float]:
    """``args`` as floats: ints and floats are accepted; bools,
    strings, None and everything else raise ``ArgumentError`` naming the position and type."""
    if isinstance(args, (str, bytes, bytearray)) or not isinstance(args, Sequence):
        raise ArgumentError(f"args: expected a sequence of numbers, got {type(args).__name__}")
    out: list[float] = []
    for i, arg in enumerate(args):
        t = type(arg)
        if t is float:
            out.append(arg)  # type: ignore[arg-type]
            continue
        if isinstance(arg, (int, float)) and not isinstance(arg, bool):
            try:
                out.append(float(arg))
            except OverflowError:
                raise ArgumentError(
                    f"args[{i}]: int {_short_repr(arg)} is too large for a float", position=i
                ) from None
            continue
        raise ArgumentError(
            f"args[{i}]: expected a number (int or float), got {t.__name__} {_short_repr(arg)}", position=i
        )
    return out


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:  # an int past the int-digits limit, or a broken __repr__
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= 40 else text[:37] + "..."
