"""Task results as JSON text, as the SQLite and Redis result backends store them.

Result values are frozen JSON values: they are thawed to write and frozen again when read, so
arrays come back as tuples and objects as ``FrozenDict``. Values JSON cannot carry (NaN,
infinities) are refused with ``ResultBackendError`` rather than stored as invalid JSON.
"""

from __future__ import annotations

import json
import math
import time

import msgspec

from machinery.errors import ResultBackendError
from machinery.jsonvalues import JSONValue, freeze, thaw
from machinery.states import TaskResult, TaskState

__all__ = ["decode_record", "decode_value", "encode_record", "encode_value", "stamped"]

#: One encoder for every record (``json.dumps`` with options builds a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_encode = _ENCODER.encode
_fast_encode = msgspec.json.Encoder().encode


def encode_value(value: JSONValue, task_uuid: str = "") -> str:
    """``value`` as compact JSON text, or ``ResultBackendError`` naming the task."""
    kind = type(value)
    if kind is int or value is None or kind is bool:
        return "null" if value is None else ("true" if value else "false") if kind is bool else str(value)
    try:
        return _encode(thaw(value))
    except (TypeError, ValueError) as exc:
        raise ResultBackendError(f"the result of task {task_uuid or '?'} cannot be stored as JSON: {exc}") from exc


def decode_value(text: str | bytes | None) -> JSONValue:
    """The frozen JSON value stored as ``text`` (None for no text)."""
    if text is None:
        return None
    try:
        return freeze(json.loads(text))
    except (TypeError, ValueError) as exc:
        raise ResultBackendError(f"a stored result is not valid JSON: {exc}") from exc


def stamped(result: TaskResult, now: float | None = None) -> TaskResult:
    """``result`` with ``updated_at`` set to ``now`` (default: the time now) when the caller left it at 0."""
    if result.updated_at:
        return result
    return TaskResult(result.task_uuid, result.state, result.name, result.result, result.error,
                      time.time() if now is None else now)


class _Record(msgspec.Struct):
    """A record whose result is a plain scalar, as msgspec writes it (its fields in this order)."""

    task_uuid: str
    state: TaskState
    name: str
    result: object
    error: str
    updated_at: float


def encode_record(result: TaskResult) -> bytes:
    """A whole TaskResult as one JSON object, UTF-8 encoded (Redis stores it as one value)."""
    value = result.result
    kind = type(value)
    if kind is int or kind is str or kind is bool or value is None or (kind is float and math.isfinite(value)):  # type: ignore[arg-type]
        # Nothing in it that JSON cannot carry: msgspec writes it several times faster than json.
        try:
            return _fast_encode(_Record(result.task_uuid, result.state, result.name, value, result.error,
                                        result.updated_at))
        except (TypeError, ValueError):
            pass  # e.g. a lone surrogate: the json module's error below
    record = {
        "task_uuid": result.task_uuid,
        "state": str(result.state),
        "name": result.name,
        "result": thaw(result.result),
        "error": result.error,
        "updated_at": result.updated_at,
    }
    try:
        text = _encode(record)
    except (TypeError, ValueError) as exc:
        raise ResultBackendError(f"the result of task {result.task_uuid} cannot be stored as JSON: {exc}") from exc
    return text.encode()


def decode_record(text: str | bytes) -> TaskResult:
    """The TaskResult stored by :func:`encode_record`."""
    try:
        data = json.loads(text)
        return TaskResult(
            task_uuid=str(data["task_uuid"]),
            state=TaskState(data["state"]),
            name=str(data.get("name", "")),
            result=freeze(data.get("result")),
            error=str(data.get("error", "")),
            updated_at=float(data.get("updated_at", 0.0)),
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise ResultBackendError(f"a stored task result is malformed: {exc}") from exc
