"""The Redis result backend in Go Machinery v1's layout (``wire_format: go`` with a ``redis://``
result backend), so a Go client's ``AsyncResult`` reads a Python task's result and the other way
round, and a chord fires once whichever language's workers run its members.

The layout is Go's: a task's state is Go's ``TaskState`` as JSON under the task's UUID itself
(``TaskUUID``, ``TaskName``, ``State``, ``Results`` as typed ``{"Type", "Value"}`` results, ``Error``,
``CreatedAt``), a group's is Go's ``GroupMeta`` under the group's UUID (``TaskUUIDs`` in group order,
``ChordTriggered``), each expiring after ``results_expire_in``. A member records its success, then
reads every member's state; when all are final, it takes Go's chord lock (the redsync mutex
``TriggerChordMutex``: ``SET NX PX`` with a token, deleted only by its holder), and the one that
finds ``ChordTriggered`` false sets it and sends the callback. As in Go, a callback whose publish
fails after the flag was set is not sent again.

Results Go wrote are read as Python values: no result is ``None``, one is its value (typed values
converted as the codec converts arguments), several are a tuple. A worker reads them as Go's list
too (``GoResults``: ``results_of``, ``group_add_results``), so that a chord callback gets each
result of each member as its own argument, as Go's worker appends them.

A ``REVOKED`` state, which Go does not know as final (its ``AsyncResult`` would wait for ever), is
written as Go's ``FAILURE`` with the error ``revoked: <reason>``, and read back as ``REVOKED``. A
final state is also announced on ``machinery:done:<uuid>`` (Go does not announce its own; waiters
poll every ``poll_interval``).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar, cast

import redis

from machinery._speedups._codec_py import format_eta, parse_eta, typed_arg
from machinery.backends.redis import RedisBatches, call_redis, connect_redis, wait_announced
from machinery.backends.redis_control import RedisControl
from machinery.config import Config
from machinery.errors import DecodeError, EncodeError, ResultBackendError
from machinery.gowire import go_typed
from machinery.jsonvalues import FrozenDict, JSONValue, freeze, thaw
from machinery.states import TaskResult, TaskState
from machinery.tls import TLSSettings

__all__ = ["CHORD_LOCK", "GoRedisBackend"]

#: Where a final state is announced (the task's UUID follows); Go Machinery does not listen.
_DONE_CHANNEL = "machinery:done:"

T = TypeVar("T")

#: The redsync mutex Go Machinery v1's Redis backend takes around ``TriggerChord``.
CHORD_LOCK = "TriggerChordMutex"
_LOCK_EXPIRY_MS = 8000  # redsync's default expiry
#: How a REVOKED state is written in Go's layout: FAILURE, its error text after this.
_REVOKED = "revoked: "
_FINAL = frozenset(s.value for s in TaskState if s.is_final)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def _now_text() -> str:
    return format_eta(datetime.now(timezone.utc))


def go_results(results: object, where: str) -> tuple[JSONValue, ...]:
    """Go's ``Results`` list as Python values, one per typed result (typed values converted as the
    codec converts arguments; a Go type it does not convert, a map or a struct, gives its JSON as is)."""
    if not results:
        return ()
    if not isinstance(results, list):
        raise ResultBackendError(f"{where}: Results is not a list")
    values: list[JSONValue] = []
    for i, item in enumerate(results):
        if not isinstance(item, dict) or "Value" not in item:
            raise ResultBackendError(f"{where}: Results[{i}] is not a typed result")
        try:
            value = typed_arg({"Type": item.get("Type"), "Value": item["Value"]}, f"{where}[{i}]", 1)
        except DecodeError:
            value = None
        if value is None:  # a Go type the codec does not convert (a map, a struct): its JSON as is
            value = freeze(item["Value"], f"{where}[{i}]")
        values.append(value)
    return tuple(values)


def one_value(results: tuple[JSONValue, ...]) -> JSONValue:
    """A task's results as one value: None for none, the value for one, a tuple for several."""
    if not results:
        return None
    return results[0] if len(results) == 1 else results


def _typed_result(value: JSONValue) -> dict[str, object]:
    """One result as Go's typed result; a value Go has no argument type for is stored with the
    type Go's ``encoding/json`` gives such JSON (a worker in Go mode never produces one)."""
    try:
        return go_typed(value, "result")
    except EncodeError:
        kind = "map[string]interface {}" if isinstance(value, FrozenDict) else "[]interface {}"
        return {"Type": kind, "Value": thaw(value)}


def _as_results(value: JSONValue) -> tuple[JSONValue, ...]:
    """A Python task's result as Go's list of results: none for ``None``, else one."""
    return () if value is None else (value,)


def task_state_document(result: TaskResult, results: tuple[JSONValue, ...] | None = None) -> bytes:
    """``result`` as Go Machinery v1's ``TaskState`` JSON (``CreatedAt`` its time, else now), its
    ``Results`` the list ``results`` when given, else ``result.result`` as none or one result."""
    if result.state is not TaskState.SUCCESS:
        typed: list[dict[str, object]] = []
    else:
        values = _as_results(result.result) if results is None else results
        typed = [{"Type": t["Type"], "Value": t["Value"]} for t in map(_typed_result, values)]
    created = format_eta(datetime.fromtimestamp(result.updated_at, timezone.utc)) if result.updated_at else _now_text()
    state, error = result.state.value, result.error
    if result.state is TaskState.REVOKED:  # a state Go does not know as final: a failure, named
        state, error = TaskState.FAILURE.value, f"{_REVOKED}{error}"
    return json.dumps({
        "TaskUUID": result.task_uuid, "TaskName": result.name, "State": state,
        "Results": typed, "Error": error, "CreatedAt": created, "TTL": 0,
    }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _state_document(text: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("State") not in TaskState.__members__:
        return None
    return doc


def read_task_state(task_uuid: str, text: bytes) -> TaskResult | None:
    """A Go ``TaskState`` document as a TaskResult (None for something else under that key)."""
    doc = _state_document(text)
    if doc is None:
        return None
    created = doc.get("CreatedAt")
    try:
        updated = parse_eta(created).timestamp() if isinstance(created, str) else 0.0
    except DecodeError:
        updated = 0.0
    state, error = TaskState(doc["State"]), str(doc.get("Error") or "")
    if state is TaskState.FAILURE and error.startswith(_REVOKED):
        state, error = TaskState.REVOKED, error[len(_REVOKED):]
    return TaskResult(
        task_uuid, state, str(doc.get("TaskName") or ""),
        one_value(go_results(doc.get("Results"), f"result of {task_uuid}")), error, updated,
    )


class GoRedisBackend:
    """A ResultBackend in Redis, in Go Machinery v1's layout; thread-safe."""

    def __init__(
        self, url: str, *, expires_in: float = 3600.0, poll_interval: float = 0.1, socket_timeout: float = 10.0,
        lock_timeout: float = 20.0, key_prefix: str = "", tls: TLSSettings | None = None,
    ) -> None:
        self._redis, self._where = connect_redis(url, socket_timeout, tls)
        if expires_in <= 0:
            raise ResultBackendError(f"expires_in must be > 0 seconds, got {expires_in!r}")
        self._expire_ms = max(1, round(float(expires_in) * 1000))
        self.poll_interval = float(poll_interval)
        self.lock_timeout = float(lock_timeout)
        self.key_prefix = key_prefix
        """Put before every task and group key: "" (Go's layout); tests sharing a Redis set one."""
        self._release = self._redis.register_script(_RELEASE)
        self._batches = RedisBatches(self._redis, self._where, self._expire_ms, key_prefix=key_prefix,
                                     channel_prefix=_DONE_CHANNEL,
                                     sent_prefix=f"{key_prefix}machinery:follow-ups-sent:")
        self.control = RedisControl(self._redis, f"{key_prefix}machinery:", self._call)
        """Revocations, rate-limit buckets and leases (``ControlStore``), under ``machinery:`` (keys
        Go Machinery does not use)."""

    @classmethod
    def from_config(cls, config: Config) -> GoRedisBackend:
        """A backend for ``config.result_backend`` keeping states ``config.results_expire_in`` seconds."""
        return cls(config.result_backend, expires_in=config.results_expire_in, tls=TLSSettings.from_config(config))

    def __repr__(self) -> str:
        return f"<GoRedisBackend {self._where}>"

    def _call(self, operation: Callable[[], T]) -> T:
        return call_redis(self._where, operation)

    @staticmethod
    def _done_channel(task_uuid: str) -> str:
        return _DONE_CHANNEL + task_uuid

    def _key(self, uuid: str) -> str:
        return self.key_prefix + uuid

    # -- task states ---------------------------------------------------------------------------

    def set(self, result: TaskResult) -> None:
        """Store ``result`` as Go's ``TaskState`` under the task's UUID; announce a final state."""
        self.set_many((result,))

    def set_many(self, results: Sequence[TaskResult]) -> None:
        """Store every one of ``results`` as Go's ``TaskState`` and announce the final ones, in one command."""
        if results:
            self._batches.write([r.task_uuid for r in results], [task_state_document(r) for r in results],
                                [r.state.is_final for r in results])

    def get_many(self, task_uuids: Sequence[str]) -> list[TaskResult | None]:
        """The latest state of each task, in order (``MGET`` in batches)."""
        texts = self._batches.read([self._key(uuid) for uuid in task_uuids])
        return [None if text is None else read_task_state(uuid, text) for uuid, text in zip(task_uuids, texts,
                                                                                           strict=True)]

    def wait_many(self, task_uuids: Sequence[str], timeout: float) -> list[TaskResult | None]:
        """Block up to ``timeout`` seconds until every task is final (announcements, else polling)."""
        return self._batches.wait_many(task_uuids, self._done_channel, self.get_many, timeout, self.poll_interval)

    def mark_follow_ups_sent(self, task_uuids: Sequence[str]) -> None:
        """Record that these tasks' follow-ups were published (keys Go never reads)."""
        self._batches.mark_sent(task_uuids)

    def follow_ups_sent(self, task_uuid: str) -> bool:
        """Whether the task's follow-ups were recorded as published."""
        return self._batches.sent(task_uuid)

    def get(self, task_uuid: str) -> TaskResult | None:
        """The latest state (written by Go or Python), or None."""
        text = cast(bytes | None, self._call(lambda: self._redis.get(self._key(task_uuid))))
        return None if text is None else read_task_state(task_uuid, text)

    def wait(self, task_uuid: str, timeout: float) -> TaskResult | None:
        """Block up to ``timeout`` seconds for a final state (announcements, else polling)."""
        return wait_announced(self._redis, self._where, self._done_channel(task_uuid), lambda: self.get(task_uuid),
                              timeout=timeout, poll_interval=self.poll_interval)

    def forget(self, task_uuid: str) -> None:
        """Drop the task's stored state."""
        self._call(lambda: self._redis.delete(self._key(task_uuid), self._batches.sent_key(task_uuid)))

    # -- groups and chords ---------------------------------------------------------------------

    def group_start(self, group_uuid: str, task_uuids: Sequence[str]) -> None:
        """Write Go's ``GroupMeta`` for the group (its members in order, chord not triggered)."""
        meta = {"GroupUUID": group_uuid, "TaskUUIDs": list(task_uuids), "ChordTriggered": False, "Lock": False,
                "CreatedAt": _now_text(), "TTL": 0}
        text = json.dumps(meta, separators=(",", ":"))
        self._call(lambda: self._redis.set(self._key(group_uuid), text, px=self._expire_ms))

    def _meta(self, group_uuid: str) -> dict[str, Any] | None:
        text = cast(bytes | None, self._call(lambda: self._redis.get(self._key(group_uuid))))
        if text is None:
            return None
        try:
            meta = json.loads(text)
        except ValueError:
            return None
        if not isinstance(meta, dict) or not isinstance(meta.get("TaskUUIDs"), list):
            return None
        return meta

    def results_of(self, task_uuid: str) -> tuple[JSONValue, ...] | None:
        """The results of a task that succeeded as Go keeps them, each a value; None otherwise."""
        text = cast(bytes | None, self._call(lambda: self._redis.get(self._key(task_uuid))))
        doc = None if text is None else _state_document(text)
        if doc is None or doc["State"] != TaskState.SUCCESS.value:
            return None
        return go_results(doc.get("Results"), f"result of {task_uuid}")

    def group_add_result(self, group_uuid: str, task_uuid: str, result: JSONValue) -> list[JSONValue] | None:
        """Record this member's success, then, when every member's state is final, trigger the
        chord as Go does: the one caller that flips ``ChordTriggered`` under Go's lock gets the
        results in group order (None when a member failed, for everyone else, and for an unknown
        group); a member's several Go results are one tuple."""
        each = self.group_add_results(group_uuid, task_uuid, _as_results(result))
        return None if each is None else [one_value(r) for r in each]

    def group_add_results(
        self, group_uuid: str, task_uuid: str, results: tuple[JSONValue, ...]
    ) -> list[tuple[JSONValue, ...]] | None:
        """``group_add_result`` with the member's results as Go's list (stored as they are) and
        each member's list returned, in group order."""
        member = TaskResult(task_uuid, TaskState.SUCCESS, "", one_value(results), "", time.time())
        self._batches.write([task_uuid], [task_state_document(member, results)], [True])
        meta = self._meta(group_uuid)
        if meta is None or meta.get("ChordTriggered"):
            return None
        members = [str(u) for u in meta["TaskUUIDs"]]
        keys = [self._key(u) for u in members]
        texts = cast(list[bytes | None], self._call(lambda: self._redis.mget(keys))) if members else []
        docs = [None if t is None else _state_document(t) for t in texts]
        states = [None if d is None else d["State"] for d in docs]
        if not all(s in _FINAL for s in states):
            return None
        if not self._trigger(group_uuid):
            return None
        if not all(s == TaskState.SUCCESS.value for s in states):
            return None
        return [go_results(d.get("Results"), f"result of {u}") for u, d in zip(members, docs, strict=True)
                if d is not None]

    def _trigger(self, group_uuid: str) -> bool:
        """Flip the group's ``ChordTriggered`` under Go's chord lock; True for the caller that did."""
        token = secrets.token_urlsafe(16)
        deadline = time.monotonic() + self.lock_timeout
        while not self._call(lambda: self._redis.set(CHORD_LOCK, token, nx=True, px=_LOCK_EXPIRY_MS)):
            if time.monotonic() > deadline:
                raise ResultBackendError(f"Redis result backend at {self._where}: {CHORD_LOCK} stayed locked")
            time.sleep(0.005 + secrets.randbelow(20) / 1000.0)
        try:
            meta = self._meta(group_uuid)
            if meta is None or meta.get("ChordTriggered"):
                return False
            meta["ChordTriggered"] = True
            text = json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
            self._call(lambda: self._redis.set(self._key(group_uuid), text, px=self._expire_ms))
            return True
        finally:
            self._call(lambda: self._release(keys=[CHORD_LOCK], args=[token]))

    def group_done(self, group_uuid: str) -> None:
        """Nothing: Go keeps a group's meta (with ``ChordTriggered``) until it expires."""

    def close(self) -> None:
        """Close the connection pool."""
        self._batches.close()
        try:
            self._redis.close()
        except redis.RedisError:
            pass
