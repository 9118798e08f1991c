"""``Monitor``: the picture events give of a system (live workers and what they run, recent tasks
with their states and durations, throughput over time, dead letters), for ``machinery inspect``
and the dashboard. Feed it events with ``apply``; read it with ``snapshot``. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from machinery.events.model import Event, RunningTask

__all__ = ["DeadLetter", "Monitor", "TaskView", "WorkerView"]

#: A worker is taken for gone when no heartbeat came for this many heartbeat intervals.
MISSED_HEARTBEATS = 2.5

_STATES = {
    "task-sent": "SENT",
    "task-received": "RECEIVED",
    "task-started": "STARTED",
    "task-succeeded": "SUCCESS",
    "task-failed": "FAILURE",
    "task-retried": "RETRY",
    "task-revoked": "REVOKED",
    "task-requeued": "REQUEUED",
    "task-dead-lettered": "DEAD",
}
_FINISHED = {"task-succeeded": "succeeded", "task-failed": "failed"}


@dataclass(slots=True)
class TaskView:
    """What the events said about one task."""

    uuid: str
    name: str
    state: str
    queue: str = ""
    worker: str = ""
    sent: float | None = None
    started: float | None = None
    updated: float = 0.0
    duration: float | None = None
    error: str = ""
    runs: int = 0


@dataclass(slots=True)
class WorkerView:
    """A worker, as its last worker event described it."""

    name: str
    queues: tuple[str, ...]
    concurrency: int
    heartbeat_interval: float
    last_seen: float
    running: tuple[RunningTask, ...] = ()
    processed: int = 0
    online: bool = True
    succeeded: int = 0
    failed: int = 0

    def alive(self, now: float) -> bool:
        """Online, and a heartbeat came recently enough."""
        return self.online and now - self.last_seen <= MISSED_HEARTBEATS * self.heartbeat_interval


@dataclass(frozen=True, slots=True)
class DeadLetter:
    timestamp: float
    queue: str
    reason: str
    uuid: str = ""
    name: str = ""


@dataclass(slots=True)
class _Bucket:
    index: int
    """``timestamp // bucket``."""
    counts: dict[str, int] = field(default_factory=dict)


class Monitor:
    """Keeps the last ``keep_tasks`` tasks, ``keep_dead`` dead letters, and finished-task counts in
    ``bucket``-second buckets over the last ``window`` seconds."""

    def __init__(self, *, keep_tasks: int = 500, keep_dead: int = 200, window: float = 300.0,
                 bucket: float = 5.0) -> None:
        self.keep_tasks = keep_tasks
        self.window = window
        self.bucket = bucket
        self._lock = threading.Lock()
        self._tasks: OrderedDict[str, TaskView] = OrderedDict()
        self._workers: dict[str, WorkerView] = {}
        self._dead: deque[DeadLetter] = deque(maxlen=keep_dead)
        self._buckets: deque[_Bucket] = deque()
        self.events_seen = 0

    def apply(self, event: Event) -> None:
        """Take ``event`` into account."""
        with self._lock:
            self.events_seen += 1
            if event.worker is not None:
                self._apply_worker(event)
            elif event.type == "task-dead-lettered" and not event.uuid:
                self._dead.append(DeadLetter(event.timestamp, event.queue, event.error))
            else:
                self._apply_task(event)

    def _apply_worker(self, event: Event) -> None:
        status = event.worker
        assert status is not None
        view = self._workers.get(event.source)
        if view is None:
            view = self._workers[event.source] = WorkerView(
                event.source, status.queues, status.concurrency, status.heartbeat_interval, event.timestamp
            )
        if event.timestamp < view.last_seen:
            return  # an older event arriving late
        view.queues, view.concurrency = status.queues, status.concurrency
        view.heartbeat_interval, view.last_seen = status.heartbeat_interval, event.timestamp
        view.running, view.processed = status.running, status.processed
        view.online = event.type != "worker-offline"

    def _apply_task(self, event: Event) -> None:
        state = _STATES.get(event.type)
        if state is None or not event.uuid:
            return
        tasks = self._tasks
        view = tasks.get(event.uuid)
        if view is None:
            view = tasks[event.uuid] = TaskView(event.uuid, event.name, state, event.queue)
            while len(tasks) > self.keep_tasks:
                tasks.popitem(last=False)
        else:
            tasks.move_to_end(event.uuid)
        if event.type == "task-sent":
            view.sent = event.timestamp
            if view.state != "SENT" and view.updated > event.timestamp:
                return  # a worker's event came first
        elif event.type == "task-started":
            view.started = event.timestamp
            view.runs += 1
        view.state = state
        view.updated = max(view.updated, event.timestamp)
        if event.queue:
            view.queue = event.queue
        if event.type != "task-sent":
            view.worker = event.source
        if event.duration is not None:
            view.duration = event.duration
        if event.error:
            view.error = event.error
        if event.type == "task-dead-lettered":
            self._dead.append(DeadLetter(event.timestamp, event.queue, event.error, event.uuid, event.name))
        kind = _FINISHED.get(event.type)
        if kind is not None:
            self._count(event.timestamp, kind)
            worker = self._workers.get(event.source)
            if worker is not None:
                if kind == "succeeded":
                    worker.succeeded += 1
                else:
                    worker.failed += 1

    def _count(self, timestamp: float, kind: str) -> None:
        index = int(timestamp // self.bucket)
        buckets = self._buckets
        if not buckets or index > buckets[-1].index:
            buckets.append(_Bucket(index))
        found = next((b for b in reversed(buckets) if b.index == index), None)
        if found is None:
            return  # between kept buckets, or older than the window: too old to matter
        found.counts[kind] = found.counts.get(kind, 0) + 1
        horizon = buckets[-1].index - int(self.window // self.bucket)
        while buckets and buckets[0].index <= horizon:
            buckets.popleft()

    # -- reading ------------------------------------------------------------------------------

    def workers(self, now: float | None = None, *, include_gone: bool = False) -> list[WorkerView]:
        """Live workers (every worker seen, with ``include_gone``), by name."""
        now = time.time() if now is None else now
        with self._lock:
            views = sorted(self._workers.values(), key=lambda w: w.name)
        return [w for w in views if include_gone or w.alive(now)]

    def tasks(self, limit: int = 100) -> list[TaskView]:
        """The most recently updated tasks, newest first."""
        with self._lock:
            views = list(self._tasks.values())
        views.sort(key=lambda t: t.updated, reverse=True)
        return views[:limit]

    def task(self, uuid: str) -> TaskView | None:
        with self._lock:
            return self._tasks.get(uuid)

    def dead_letters(self) -> list[DeadLetter]:
        """Dead letters seen, newest first."""
        with self._lock:
            return list(reversed(self._dead))

    def throughput(self, now: float | None = None) -> list[tuple[float, int, int]]:
        """(bucket start, succeeded, failed) for every bucket of the window up to ``now``."""
        now = time.time() if now is None else now
        last = int(now // self.bucket)
        size = max(1, int(self.window // self.bucket))
        with self._lock:
            counts = {b.index: dict(b.counts) for b in self._buckets}
        out = []
        for index in range(last - size + 1, last + 1):
            c = counts.get(index, {})
            out.append((index * self.bucket, c.get("succeeded", 0), c.get("failed", 0)))
        return out
