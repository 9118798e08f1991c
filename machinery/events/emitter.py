"""``EventEmitter``: the hook that turns what happens to tasks and workers into events.

Hooks run on task threads, so the emitter only appends to a buffer; one background thread
publishes the buffer every ``FLUSH_INTERVAL`` seconds while events come (at once past
``FLUSH_BATCH``) and a worker's heartbeat every ``heartbeat_interval`` seconds. Events are best-effort: when the channel
cannot take them they are dropped with a warning (at most one per ``_WARN_EVERY`` seconds) and the
tasks carry on; past ``MAX_BUFFERED`` waiting events the oldest are dropped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from machinery.events.channel import EventChannel
from machinery.events.model import Event, RunningTask, WorkerStatus
from machinery.hooks import Hook, Outcome, TaskCall, WorkerInfo, worker_name
from machinery.signature import Signature
from machinery.states import TaskState

__all__ = ["FLUSH_BATCH", "FLUSH_INTERVAL", "MAX_BUFFERED", "EventEmitter"]

log = logging.getLogger("machinery.events")

#: Seconds an event waits in the buffer at most before it is published.
FLUSH_INTERVAL = 0.1
#: Buffered events that are published at once, without waiting for the interval.
FLUSH_BATCH = 256
#: Most events waiting to be published; older ones are dropped beyond.
MAX_BUFFERED = 10_000
_WARN_EVERY = 30.0

_OUTCOME_EVENTS = {
    TaskState.SUCCESS: "task-succeeded",
    TaskState.FAILURE: "task-failed",
    TaskState.RETRY: "task-retried",
    TaskState.REVOKED: "task-revoked",
    TaskState.PENDING: "task-requeued",
}


#: A task event as the task threads leave it: (type, timestamp, uuid, name, queue, duration, error, delay).
_TaskItem = tuple[str, float, str, str, str, float | None, str, float | None]


class EventEmitter(Hook):
    """Publishes task and worker events through the channel ``open_channel()`` returns (opened
    on first use, in the emitter's thread).

    Task threads only append a tuple to a deque (no lock); the publishing thread builds the events,
    sleeping while there is nothing to do and woken by the first event that follows."""

    def __init__(
        self,
        open_channel: Callable[[], EventChannel],
        *,
        default_queue: str,
        heartbeat_interval: float = 5.0,
    ) -> None:
        if heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be > 0, got {heartbeat_interval}")
        self._open_channel = open_channel
        self._default_queue = default_queue
        self.heartbeat_interval = heartbeat_interval
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._buffer: deque[_TaskItem | Event] = deque()
        self._busy = False
        """True while the publishing thread is not asleep waiting for events."""
        self._dropped = 0
        self._running: dict[str, RunningTask] = {}
        self._retry_delays: dict[str, float] = {}
        self._processed = 0
        self._workers: dict[int, WorkerInfo] = {}
        self._thread: threading.Thread | None = None
        self._closing = False
        self._channel: EventChannel | None = None
        self._warned = 0.0
        self._pid = -1
        self._source = ""
        self.published = 0
        """Events published so far."""

    def __repr__(self) -> str:
        return "<EventEmitter>"

    @property
    def source(self) -> str:
        if self._pid != os.getpid():
            self._pid, self._source = os.getpid(), worker_name()
        return self._source

    # -- buffering ----------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Queue ``event`` for publishing."""
        self._append(event)

    def _append(self, item: _TaskItem | Event) -> None:
        buffer = self._buffer
        if len(buffer) >= MAX_BUFFERED:
            self._dropped += 1
            return
        buffer.append(item)
        if not self._busy or len(buffer) >= FLUSH_BATCH:
            self._wake_up()

    def _wake_up(self) -> None:
        with self._lock:
            if self._closing:
                return
            if self._thread is None:
                self._busy = True
                self._thread = threading.Thread(target=self._loop, name="machinery-events", daemon=True)
                self._thread.start()
        self._wake.set()

    def _task_event(
        self,
        kind: str,
        sig: Signature,
        queue: str,
        *,
        duration: float | None = None,
        error: str = "",
        delay: float | None = None,
    ) -> None:
        self._append((kind, time.time(), sig.uuid, sig.name, queue, duration, error, delay))

    def _status(self, worker: WorkerInfo) -> WorkerStatus:
        running = tuple(self._running.values())  # one C call: no other thread runs meanwhile
        return WorkerStatus(worker.queues, worker.concurrency, self.heartbeat_interval, running, self._processed)

    def _worker_event(self, kind: str, worker: WorkerInfo) -> Event:
        return Event(kind, time.time(), worker.name, worker=self._status(worker))

    def _drain(self) -> list[Event]:
        buffer = self._buffer
        source = self.source
        events = []
        while buffer:
            item = buffer.popleft()
            if isinstance(item, Event):
                events.append(item)
            else:
                kind, timestamp, uuid, name, queue, duration, error, delay = item
                events.append(Event(kind, timestamp, source, uuid, name, queue, duration, error, delay))
        return events

    def _loop(self) -> None:
        wake = self._wake
        next_beat = time.monotonic() + self.heartbeat_interval
        while True:
            wake.clear()
            batch = self._drain()
            if time.monotonic() >= next_beat:
                batch += [self._worker_event("worker-heartbeat", w) for w in list(self._workers.values())]
                next_beat = time.monotonic() + self.heartbeat_interval
            dropped, self._dropped = self._dropped, 0
            if dropped:
                self._warn(f"{dropped} events dropped: more than {MAX_BUFFERED} were waiting")
            if batch:
                self._publish(batch)
            if self._closing:
                if self._buffer:
                    continue
                return
            if batch:
                wake.wait(FLUSH_INTERVAL)  # gather what follows closely (woken early past FLUSH_BATCH)
                continue
            self._busy = False  # asleep: the next event wakes this thread
            if self._buffer:
                self._busy = True
                continue
            wait = max(0.0, next_beat - time.monotonic()) if self._workers else None
            wake.wait(wait)
            self._busy = True

    def _publish(self, batch: list[Event]) -> None:
        try:
            if self._channel is None:
                self._channel = self._open_channel()
            self._channel.publish(batch)
            self.published += len(batch)
        except Exception as exc:
            self._warn(f"{len(batch)} events dropped: {exc}")
            channel, self._channel = self._channel, None
            if channel is not None:
                try:
                    channel.close()
                except Exception:
                    pass

    def _warn(self, text: str) -> None:
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY:
            self._warned = now
            log.warning("events: %s", text)

    def flush(self, timeout: float = 5.0) -> None:
        """Publish what is buffered now and stop the background thread (the next event starts it again)."""
        with self._lock:
            thread = self._thread
            self._closing = True
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            self._thread = None
            self._closing = False
            self._busy = False
        if self._buffer:
            self._wake_up()

    def close(self) -> None:
        """Publish what is buffered and close the channel."""
        self.flush()
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    # -- hook points --------------------------------------------------------------------------

    def before_publish(self, signature: Signature) -> None:
        self._task_event("task-sent", signature, signature.routing_key or self._default_queue)

    def before_run(self, call: TaskCall) -> None:
        self._task_event("task-received", call.signature, call.queue)

    def on_start(self, call: TaskCall) -> None:
        sig = call.signature
        now = time.time()
        self._running[sig.uuid] = RunningTask(sig.uuid, sig.name, now)
        self._append(("task-started", now, sig.uuid, sig.name, call.queue, None, "", None))

    def on_retry(self, call: TaskCall, error: str, delay: float) -> None:
        self._retry_delays[call.signature.uuid] = delay

    def after_run(self, call: TaskCall, outcome: Outcome) -> None:
        sig = call.signature
        self._running.pop(sig.uuid, None)
        delay = self._retry_delays.pop(sig.uuid, None)
        if outcome.ran:
            with self._lock:
                self._processed += 1
        kind = _OUTCOME_EVENTS.get(outcome.state)
        if kind is None:
            return
        duration = outcome.duration if outcome.ran else None
        self._task_event(kind, sig, call.queue, duration=duration, error=outcome.error, delay=delay)

    def on_dead_letter(self, queue: str, reason: str, signature: Signature | None) -> None:
        if signature is None:
            self.emit(Event("task-dead-lettered", time.time(), self.source, queue=queue, error=reason))
        else:
            self._task_event("task-dead-lettered", signature, queue, error=reason)

    def worker_started(self, worker: WorkerInfo) -> None:
        self._workers[id(worker)] = worker
        self.emit(self._worker_event("worker-online", worker))

    def worker_stopped(self, worker: WorkerInfo) -> None:
        self._workers.pop(id(worker), None)
        self.emit(self._worker_event("worker-offline", worker))
