"""``EventEmitter``: the hook that turns what happens to tasks and workers into events.

Hooks run on task threads, so the emitter only appends to a buffer; one background thread
publishes the buffer every ``FLUSH_INTERVAL`` seconds (at once past ``FLUSH_BATCH`` events) and a
worker's heartbeat every ``heartbeat_interval`` seconds. Events are best-effort: when the channel
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


class EventEmitter(Hook):
    """Publishes task and worker events through the channel ``open_channel()`` returns (opened
    on first use, in the emitter's thread)."""

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
        self._cond = threading.Condition()
        self._buffer: deque[Event] = deque()
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
        with self._cond:
            if self._closing:
                return
            buffer = self._buffer
            buffer.append(event)
            if len(buffer) > MAX_BUFFERED:
                buffer.popleft()
                self._dropped += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="machinery-events", daemon=True)
                self._thread.start()
            if len(buffer) == 1 or len(buffer) >= FLUSH_BATCH:
                self._cond.notify()

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
        self.emit(Event(kind, time.time(), self.source, sig.uuid, sig.name, queue, duration, error, delay))

    def _status(self, worker: WorkerInfo) -> WorkerStatus:
        with self._cond:
            running = tuple(self._running.values())
            processed = self._processed
        return WorkerStatus(worker.queues, worker.concurrency, self.heartbeat_interval, running, processed)

    def _worker_event(self, kind: str, worker: WorkerInfo) -> Event:
        return Event(kind, time.time(), worker.name, worker=self._status(worker))

    def _loop(self) -> None:
        next_beat = time.monotonic() + self.heartbeat_interval
        while True:
            with self._cond:
                while not self._buffer and not self._closing:
                    wait = next_beat - time.monotonic() if self._workers else None
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._buffer and len(self._buffer) < FLUSH_BATCH and not self._closing:
                    self._cond.wait(FLUSH_INTERVAL)  # gather what follows closely
                batch = list(self._buffer)
                self._buffer.clear()
                dropped, self._dropped = self._dropped, 0
                workers = list(self._workers.values())
                closing = self._closing
            if time.monotonic() >= next_beat:
                batch += [self._worker_event("worker-heartbeat", w) for w in workers]
                next_beat = time.monotonic() + self.heartbeat_interval
            if dropped:
                self._warn(f"{dropped} events dropped: more than {MAX_BUFFERED} were waiting")
            if batch:
                self._publish(batch)
            if closing:
                return

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
        """Publish what is buffered now and stop the background thread (``emit`` starts it again)."""
        with self._cond:
            thread = self._thread
            self._closing = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._thread = None
            self._closing = False

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
        with self._cond:
            self._running[sig.uuid] = RunningTask(sig.uuid, sig.name, now)
        self.emit(Event("task-started", now, self.source, sig.uuid, sig.name, call.queue))

    def on_retry(self, call: TaskCall, error: str, delay: float) -> None:
        with self._cond:
            self._retry_delays[call.signature.uuid] = delay

    def after_run(self, call: TaskCall, outcome: Outcome) -> None:
        sig = call.signature
        with self._cond:
            started = self._running.pop(sig.uuid, None)
            delay = self._retry_delays.pop(sig.uuid, None)
            if started is not None:
                self._processed += 1
        kind = _OUTCOME_EVENTS.get(outcome.state)
        if kind is None:
            return
        duration = outcome.duration if started is not None else None
        self._task_event(kind, sig, call.queue, duration=duration, error=outcome.error, delay=delay)

    def on_dead_letter(self, queue: str, reason: str, signature: Signature | None) -> None:
        if signature is None:
            self.emit(Event("task-dead-lettered", time.time(), self.source, queue=queue, error=reason))
        else:
            self._task_event("task-dead-lettered", signature, queue, error=reason)

    def worker_started(self, worker: WorkerInfo) -> None:
        with self._cond:
            self._workers[id(worker)] = worker
        self.emit(self._worker_event("worker-online", worker))

    def worker_stopped(self, worker: WorkerInfo) -> None:
        with self._cond:
            self._workers.pop(id(worker), None)
        self.emit(self._worker_event("worker-offline", worker))
