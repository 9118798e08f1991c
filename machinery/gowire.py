"""Go Machinery v1's wire format: a Signature written as Go's ``encoding/json`` writes Go
Machinery v1's ``tasks.Signature``, and Python values as its typed arguments and results.

Go decodes a message into its ``Signature`` struct: every argument must be an object
``{"Name": "", "Type": "<Go type>", "Value": ...}`` naming one of the types Go Machinery v1 converts
(``bool``, ``int64``, ``uint64``, ``float64``, ``string``, ``[]byte`` as base64, and flat slices of
them). A value Go cannot carry (``None``, an object, a nested or mixed list) raises ``EncodeError``
naming its position, so nothing is published that a Go worker would reject.

Each argument's ``Name`` is the name of the task's parameter at its position when the sender
knows it (``arg_names``: the sending app's registered function), else ``""``; Go's worker binds
arguments by position and ignores names, and so does this project's decoder. A signature whose
UUID is in ``ignoring`` is written with ``IgnoreWhenTaskNotRegistered`` set, so a message that
arrived with it keeps it when it is sent again.

Used when ``Config.wire_format`` is ``"go"`` (``Router`` picks it); decoding needs nothing of this
module, since the codec reads typed arguments in every mode.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence, Set

from machinery._speedups._codec_py import bytes_arg, format_eta
from machinery.errors import EncodeError
from machinery.jsonvalues import FrozenDict, JSONValue
from machinery.signature import Signature

__all__ = [
    "EMPTY_LIST_TYPE",
    "ArgNames",
    "encode_go",
    "fibonacci_next",
    "go_typed",
    "go_typed_results",
]

#: Task name -> the names of its positional parameters, in order (those it does not name: "").
ArgNames = Callable[[str], Sequence[str]]

#: The Go type written for an empty list, whose element type Python does not know.
EMPTY_LIST_TYPE = "[]string"

_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1


def _scalar_type(value: object) -> str | None:
    """Go's type name for a scalar ``value``, or None when it is not one Go converts."""
    t = type(value)
    if t is bool:
        return "bool"
    if t is int:
        if _INT64[0] <= value <= _INT64[1]:  # type: ignore[operator]
            return "int64"
        if 0 <= value <= _UINT64_MAX:  # type: ignore[operator]
            return "uint64"
        return None
    if t is float:
        return "float64" if math.isfinite(value) else None  # type: ignore[arg-type]
    if t is str:
        return "string"
    return None


def _list_type(items: tuple[JSONValue, ...]) -> str | None:
    """Go's slice type for a tuple of scalars of one kind (ints and floats together: ``[]float64``)."""
    if not items:
        return EMPTY_LIST_TYPE
    kinds = set()
    for item in items:
        kind = _scalar_type(item)
        if kind is None:
            return None
        kinds.add(kind)
    if len(kinds) == 1:
        return "[]" + kinds.pop()
    if kinds <= {"int64", "uint64"}:
        return "[]uint64" if all(item >= 0 for item in items) else None  # type: ignore[operator]
    if kinds <= {"int64", "uint64", "float64"}:
        return "[]float64"
    return None


def go_typed(value: JSONValue, where: str, name: str = "") -> dict[str, object]:
    """``value`` as a Go Machinery v1 typed argument named ``name``; ``EncodeError`` naming
    ``where`` when Go Machinery v1 has no type for it."""
    if type(value) is bytes:
        typed = bytes_arg(value)
        typed["Name"] = name
        return typed
    kind = _scalar_type(value)
    if kind is None and type(value) is tuple:
        kind = _list_type(value)
        if kind is not None:
            return {"Name": name, "Type": kind, "Value": list(value)}
    if kind is None:
        raise EncodeError(
            f"{where}: {_describe(value)} has no Go Machinery v1 type (Go's typed arguments carry "
            "bool, integers, floats, strings, bytes and flat lists of one of them)"
        )
    return {"Name": name, "Type": kind, "Value": value}


def go_typed_results(result: JSONValue, where: str = "result") -> list[dict[str, object]]:
    """A task's result as Go Machinery v1's list of typed results: none for ``None`` (a Go task that
    returns only an error), else one."""
    return [] if result is None else [go_typed(result, where)]


def _describe(value: object) -> str:
    if value is None:
        return "None"
    if type(value) is FrozenDict:
        return "an object"
    if type(value) is tuple:
        return "a nested or mixed list"
    if type(value) is float:
        return f"float {value!r}"
    if type(value) is int:
        return "an integer beyond 64 bits"
    return type(value).__name__


class _Writer:
    """Writes signatures as Go's ``Signature`` objects under one message's settings."""

    __slots__ = ("arg_names", "ignoring")

    def __init__(self, arg_names: ArgNames | None, ignoring: Set[str]) -> None:
        self.arg_names = arg_names
        self.ignoring = ignoring

    def args(self, sig: Signature, where: str) -> list[object] | None:
        if not sig.args:
            return None
        names = self.arg_names(sig.name) if self.arg_names is not None else ()
        known = len(names)
        return [go_typed(a, f"{where}.Args[{i}]", names[i] if i < known else "") for i, a in enumerate(sig.args)]

    def signatures(self, sigs: Sequence[Signature], where: str) -> list[object] | None:
        if not sigs:
            return None
        return [self.signature(s, f"{where}[{i}]", "") for i, s in enumerate(sigs)]

    def signature(self, sig: Signature, where: str, routing_key: str) -> dict[str, object]:
        chord = sig.chord_callback
        return {
            "UUID": sig.uuid,
            "Name": sig.name,
            "RoutingKey": routing_key or sig.routing_key,
            "ETA": None if sig.eta is None else format_eta(sig.eta),
            "GroupUUID": sig.group_uuid,
            "GroupTaskCount": sig.group_task_count,
            "Args": self.args(sig, where),
            "Headers": _plain(sig.headers) if sig.headers else None,
            "Priority": sig.priority,
            "Immutable": sig.immutable,
            "RetryCount": sig.retry_count,
            "RetryTimeout": sig.retry_timeout,
            "OnSuccess": self.signatures(sig.on_success, f"{where}.OnSuccess"),
            "OnError": self.signatures(sig.on_error, f"{where}.OnError"),
            "ChordCallback": None if chord is None else self.signature(chord, f"{where}.ChordCallback", ""),
            "ChordErrorCallback": None,
            "BrokerMessageGroupId": "",
            "SQSReceiptHandle": "",
            "StopTaskDeletionOnError": False,
            "IgnoreWhenTaskNotRegistered": sig.uuid in self.ignoring,
        }


def _plain(value: object) -> object:
    if type(value) is tuple:
        return [_plain(v) for v in value]
    if type(value) is FrozenDict:
        return {k: _plain(v) for k, v in value.items()}
    return value


def encode_go(
    sig: Signature, routing_key: str, arg_names: ArgNames | None = None, ignoring: Set[str] = frozenset()
) -> bytes:
    """``sig`` as Go Machinery v1's JSON message, its ``RoutingKey`` set to ``routing_key`` (the AMQP
    routing key it is published with, as Go's broker sets it); nested callbacks keep theirs. Each
    argument is named after the parameter at its position by ``arg_names`` (none: ``""``); the
    signatures whose UUIDs are in ``ignoring`` are written with ``IgnoreWhenTaskNotRegistered``."""
    obj = _Writer(arg_names, ignoring).signature(sig, "message", routing_key)
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        raise EncodeError("message: a string holds a lone surrogate, which UTF-8 cannot carry") from None
    except (ValueError, TypeError) as exc:
        raise EncodeError(f"message: {exc}") from None


def fibonacci_next(seconds: int) -> int:
    """Go Machinery v1's next retry timeout after ``seconds``: the next Fibonacci number (1, 2, 3,
    5, 8, ...), so retries alternate between Go and Python workers on one schedule."""
    previous, current = 1, 1
    while current <= seconds:
        previous, current = current, previous + current
    return current
