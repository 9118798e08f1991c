"""What an event is, and its JSON form on the wire.

Task events name the task (UUID and name) and say what happened to it; worker events carry a
``WorkerStatus`` (queues, threads, the tasks running now, how many it finished). Every event
names its ``source``: ``<hostname>.<pid>`` of the process that published it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = [
    "EVENT_TYPES",
    "TASK_EVENT_TYPES",
    "WORKER_EVENT_TYPES",
    "Event",
    "EventDecodeError",
    "RunningTask",
    "WorkerStatus",
    "decode_event",
    "encode_event",
]

#: Task events, in the order a task usually goes through them.
TASK_EVENT_TYPES = (
    "task-sent",            # published (by send_task or by a worker sending a follow-up)
    "task-received",        # a worker took the message to run it (before the before_run hooks)
    "task-started",         # its run begins
    "task-succeeded",       # stored SUCCESS (duration)
    "task-failed",          # stored FAILURE for good (duration, error)
    "task-retried",         # failed, sent again in ``delay`` seconds (error)
    "task-revoked",         # a hook skipped it (error: the reason)
    "task-requeued",        # the message went back to its queue without running (a hook's Delay, or
                            # an outcome that could not be stored)
    "task-dead-lettered",   # moved to <queue>.dead (error: the reason)
)
#: Worker events: on start, every ``heartbeat_interval`` seconds, and on a clean stop.
WORKER_EVENT_TYPES = ("worker-online", "worker-heartbeat", "worker-offline")
EVENT_TYPES = TASK_EVENT_TYPES + WORKER_EVENT_TYPES


#: One encoder for every event (``json.dumps`` with options builds a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class EventDecodeError(ValueError):
    """Bytes that are not an event this version understands."""


@dataclass(frozen=True, slots=True)
class RunningTask:
    """A task a worker is running, in its heartbeat."""

    uuid: str
    name: str
    started: float
    """Unix time the run started."""


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What a worker event says about its worker."""

    queues: tuple[str, ...]
    concurrency: int
    heartbeat_interval: float
    running: tuple[RunningTask, ...] = ()
    processed: int = 0
    """Runs finished since the worker started."""


@dataclass(frozen=True, slots=True)
class Event:
    """One event. Task events fill the task fields; worker events fill ``worker``."""

    type: str
    timestamp: float
    source: str
    uuid: str = ""
    name: str = ""
    queue: str = ""
    duration: float | None = None
    """Seconds the run took (succeeded, failed, retried)."""
    error: str = ""
    """The error text (failed, retried) or the reason (revoked, dead-lettered, requeued)."""
    delay: float | None = None
    """Seconds before it runs again (retried, requeued)."""
    worker: WorkerStatus | None = None

    @property
    def is_task_event(self) -> bool:
        return self.type.startswith("task-")


def encode_event(event: Event) -> bytes:
    """``event`` as compact JSON (fields left at their defaults are left out)."""
    data: dict[str, object] = {"type": event.type, "timestamp": event.timestamp, "source": event.source}
    if event.uuid:
        data["uuid"] = event.uuid
    if event.name:
        data["name"] = event.name
    if event.queue:
        data["queue"] = event.queue
    if event.error:
        data["error"] = event.error
    if event.duration is not None:
        data["duration"] = event.duration
    if event.delay is not None:
        data["delay"] = event.delay
    status = event.worker
    if status is not None:
        data["worker"] = {
            "queues": list(status.queues),
            "concurrency": status.concurrency,
            "heartbeat_interval": status.heartbeat_interval,
            "running": [[r.uuid, r.name, r.started] for r in status.running],
            "processed": status.processed,
        }
    return _ENCODER.encode(data).encode()


def _field(data: dict[str, object], key: str, kind: type, default: object) -> object:
    value = data.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if value is not default and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        raise EventDecodeError(f"event field {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _text(data: dict[str, object], key: str) -> str:
    value = _field(data, key, str, "")
    assert isinstance(value, str)
    return value


def _number(data: dict[str, object], key: str) -> float | None:
    value = _field(data, key, float, None)
    assert value is None or isinstance(value, float)
    return value


def _status(value: object) -> WorkerStatus:
    if not isinstance(value, dict):
        raise EventDecodeError("event field 'worker' must be an object")
    queues = value.get("queues")
    running = value.get("running", [])
    concurrency = value.get("concurrency")
    interval = _number(value, "heartbeat_interval")
    processed = value.get("processed", 0)
    if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
        raise EventDecodeError("worker.queues must be a list of strings")
    if not isinstance(concurrency, int) or isinstance(concurrency, bool):
        raise EventDecodeError("worker.concurrency must be an integer")
    if not isinstance(processed, int) or isinstance(processed, bool):
        raise EventDecodeError("worker.processed must be an integer")
    if interval is None or interval <= 0:
        raise EventDecodeError("worker.heartbeat_interval must be a number > 0")
    tasks: list[RunningTask] = []
    if not isinstance(running, list):
        raise EventDecodeError("worker.running must be a list")
    for item in running:
        if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str)
                or not isinstance(item[1], str) or not isinstance(item[2], int | float)
                or isinstance(item[2], bool)):
            raise EventDecodeError("worker.running items must be [uuid, name, started]")
        tasks.append(RunningTask(item[0], item[1], float(item[2])))
    return WorkerStatus(tuple(queues), concurrency, interval, tuple(tasks), processed)


def decode_event(body: bytes | str) -> Event:
    """The event in ``body``; ``EventDecodeError`` for anything else (an unknown type included)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventDecodeError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EventDecodeError("an event must be a JSON object")
    kind = _text(data, "type")
    if kind not in EVENT_TYPES:
        raise EventDecodeError(f"unknown event type {kind!r}")
    timestamp = _number(data, "timestamp")
    if timestamp is None:
        raise EventDecodeError("event field 'timestamp' is missing")
    worker = _status(data["worker"]) if "worker" in data else None
    if kind in WORKER_EVENT_TYPES and worker is None:
        raise EventDecodeError(f"a {kind} event needs its 'worker' field")
    return Event(
        type=kind,
        timestamp=timestamp,
        source=_text(data, "source"),
        uuid=_text(data, "uuid"),
        name=_text(data, "name"),
        queue=_text(data, "queue"),
        duration=_number(data, "duration"),
        error=_text(data, "error"),
        delay=_number(data, "delay"),
        worker=worker,
    )
