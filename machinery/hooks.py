"""Hooks: code of yours that runs at fixed points of a task's life, in the order registered.

Subclass ``Hook`` and override the methods you need (the others do nothing), then register an
instance on the App: ``app.hooks.add(MyHook())``. The points:

- ``before_publish(signature)``: a task is about to be sent (by ``send_task`` or by a worker sending
  a callback, a retry or a chord callback). Return a replacement signature with the same UUID
  (for example with a header added: ``signature.replace(headers=...)``) or None to keep it.
- ``before_run(call)``: a worker is about to run a task. Return None to let it run, or a decision:
  ``Skip(reason, state)`` records ``state`` (``REVOKED`` by default) without running it or its
  callbacks, ``Delay(seconds)`` gives the message back to its queue to run later.
- ``on_start(call)``: no ``before_run`` hook objected; the task starts running now.
- ``after_run(call, outcome)``: called once for every run ``before_run`` announced, whatever
  happened: the task succeeded, failed, is retried, was skipped or delayed, or its outcome could not
  be stored (``outcome.ran`` tells whether it ran).
- ``on_failure(call, error)``: the task failed for good (no retries left).
- ``on_retry(call, error, delay)``: the task failed and is sent again after ``delay`` seconds.
- ``on_dead_letter(queue, reason, signature)``: a message was moved to ``<queue>.dead``
  (``signature`` is None when the message could not be decoded).
- ``worker_started(worker)`` / ``worker_stopped(worker)``: a worker starts consuming / has stopped.

Hooks run on the thread that reached the point (a worker's task threads for the run hooks), so
they must be thread-safe and quick. An exception raised by a hook is logged with the hook's name
and does not change what happens to the task: a failing ``before_publish`` leaves the signature as
it was, a failing ``before_run`` lets the task run. When several ``before_run`` hooks are
registered, the first decision wins and the later hooks' ``before_run`` are not called; their
``after_run`` still is (with ``outcome.ran`` False), so every hook learns how each task ended.

Go Machinery's pre- and post-task handlers are ``Hooks.pre_task(fn)`` and ``Hooks.post_task(fn)``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from machinery.backends.base import ResultBackend
from machinery.brokers.base import Broker
from machinery.jsonvalues import JSONValue
from machinery.signature import Signature
from machinery.states import TaskState

__all__ = [
    "Delay",
    "Hook",
    "Hooks",
    "Outcome",
    "RunDecision",
    "Skip",
    "TaskCall",
    "WorkerInfo",
    "worker_name",
]

log = logging.getLogger("machinery.hooks")

H = TypeVar("H", bound="Hook")


def worker_name() -> str:
    """This process's worker name: ``<hostname>.<pid>``."""
    return f"{socket.gethostname()}.{os.getpid()}"


@dataclass(frozen=True, slots=True)
class TaskCall:
    """One run of a task by a worker, as the run hooks see it."""

    signature: Signature
    queue: str
    """The queue the message came from."""
    delivery_count: int = 1
    """How many times the message has been delivered (1 = first time)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended, for ``after_run``."""

    state: TaskState
    """``SUCCESS``, ``FAILURE``, ``RETRY``, the state a ``Skip`` recorded, or ``PENDING`` when the
    message went back to its queue (a ``Delay``, or an outcome that could not be stored)."""
    duration: float
    """Seconds from the start of the run to its outcome being handed over for storing (for a decision: from
    ``before_run`` to the decision being carried out)."""
    result: JSONValue = None
    error: str = ""
    ran: bool = True
    """True when the task ran (``on_start`` was called); False when a decision kept it from
    running. Hooks that count what runs pair ``on_start`` with the ``after_run`` that has it."""


@dataclass(frozen=True, slots=True)
class Skip:
    """A ``before_run`` decision: do not run the task; record ``state`` with ``reason`` as its
    error. Its callbacks (success and error) are not sent, and the message is acknowledged."""

    reason: str
    state: TaskState = TaskState.REVOKED


@dataclass(frozen=True, slots=True)
class Delay:
    """A ``before_run`` decision: give the message back to its queue, deliverable again after
    ``seconds`` (a rate limit, for instance). The task has not run."""

    seconds: float


RunDecision = Skip | Delay


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker, as ``worker_started``/``worker_stopped`` see it."""

    name: str
    """``<hostname>.<pid>``, unique among live workers."""
    queues: tuple[str, ...]
    concurrency: int
    broker: Broker
    backend: ResultBackend | None = field(default=None)


class Hook:
    """Base class of hooks: every method does nothing; override those you need."""

    def before_publish(self, signature: Signature) -> Signature | None:
        """A task is about to be sent; return a replacement, or None to keep ``signature``."""
        return None

    def before_run(self, call: TaskCall) -> RunDecision | None:
        """A task is about to run; return None to run it, or ``Skip``/``Delay``."""
        return None

    def on_start(self, call: TaskCall) -> None:
        """No ``before_run`` hook objected: the task starts running now."""

    def after_run(self, call: TaskCall, outcome: Outcome) -> None:
        """The run announced by ``before_run`` ended with ``outcome`` (stored by now)."""

    def on_failure(self, call: TaskCall, error: str) -> None:
        """The task failed for good with ``error`` (its error callbacks are sent)."""

    def on_retry(self, call: TaskCall, error: str, delay: float) -> None:
        """The task failed with ``error`` and is sent again in ``delay`` seconds."""

    def on_dead_letter(self, queue: str, reason: str, signature: Signature | None) -> None:
        """A message from ``queue`` was dead-lettered for ``reason``."""

    def worker_started(self, worker: WorkerInfo) -> None:
        """``worker`` starts consuming."""

    def worker_stopped(self, worker: WorkerInfo) -> None:
        """``worker`` has stopped (its tasks finished and were acknowledged)."""


_POINTS = (
    "before_publish", "before_run", "on_start", "after_run", "on_failure", "on_retry", "on_dead_letter",
    "worker_started", "worker_stopped",
)


class _FunctionHook(Hook):
    """Go Machinery's pre-/post-task handlers: a function called before or after each run."""

    def __init__(
        self,
        before: Callable[[Signature], None] | None = None,
        after: Callable[[Signature, Outcome], None] | None = None,
    ) -> None:
        self._before = before
        self._after = after

    def __repr__(self) -> str:
        fn = self._before or self._after
        return f"<hook {getattr(fn, '__qualname__', fn)!r}>"

    def before_run(self, call: TaskCall) -> RunDecision | None:
        if self._before is not None:
            self._before(call.signature)
        return None

    def after_run(self, call: TaskCall, outcome: Outcome) -> None:
        if self._after is not None:
            self._after(call.signature, outcome)


class Hooks:
    """The hooks registered on an App, called in the order they were added.

    Adding and removing are thread-safe; each call point reads an immutable snapshot, and a point
    no hook overrides costs one attribute read (``wants_run``, ``wants_publish``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: tuple[Hook, ...] = ()
        self._by_point: dict[str, tuple[Hook, ...]] = dict.fromkeys(_POINTS, ())
        self.wants_publish = False
        """True when a hook overrides ``before_publish``."""
        self.wants_run = False
        """True when a hook overrides one of the run points."""
        self.wants_outcome = False
        """True when a hook overrides ``on_start`` or ``after_run`` (a run must be timed and its
        outcome told); with only ``before_run`` hooks (the ``Revoker``) it need not be."""

    def __repr__(self) -> str:
        return f"<Hooks {list(self._hooks)!r}>"

    def __len__(self) -> int:
        return len(self._hooks)

    def __iter__(self) -> Iterator[Hook]:
        return iter(self._hooks)

    @property
    def registered(self) -> tuple[Hook, ...]:
        """The hooks, in the order they are called."""
        return self._hooks

    def add(self, hook: H) -> H:
        """Register ``hook`` after those already registered; returns it."""
        if not isinstance(hook, Hook):
            raise TypeError(f"hooks must subclass machinery.Hook, got {type(hook).__name__}")
        with self._lock:
            if hook in self._hooks:
                raise ValueError(f"{hook!r} is registered already")
            self._set((*self._hooks, hook))
        return hook

    def remove(self, hook: Hook) -> None:
        """Unregister ``hook`` (``ValueError`` when it is not registered)."""
        with self._lock:
            if hook not in self._hooks:
                raise ValueError(f"{hook!r} is not registered")
            self._set(tuple(h for h in self._hooks if h is not hook))

    def pre_task(self, function: Callable[[Signature], None]) -> Hook:
        """Call ``function(signature)`` before each task runs (Go Machinery's pre-task handler)."""
        return self.add(_FunctionHook(before=function))

    def post_task(self, function: Callable[[Signature, Outcome], None]) -> Hook:
        """Call ``function(signature, outcome)`` after each run (Go Machinery's post-task handler,
        which also learns how the task ended)."""
        return self.add(_FunctionHook(after=function))

    def _set(self, hooks: tuple[Hook, ...]) -> None:
        by_point = {
            point: tuple(h for h in hooks if getattr(type(h), point) is not getattr(Hook, point)) for point in _POINTS
        }
        self._hooks = hooks
        self._by_point = by_point
        self.wants_publish = bool(by_point["before_publish"])
        self.wants_run = any(by_point[p] for p in ("before_run", "on_start", "after_run", "on_failure", "on_retry"))
        self.wants_outcome = bool(by_point["on_start"] or by_point["after_run"])

    # -- calling them -------------------------------------------------------------------------

    @staticmethod
    def _failed(hook: Hook, point: str) -> None:
        log.exception("hook %r failed in %s; carrying on", hook, point)

    def before_publish(self, signature: Signature) -> Signature:
        """``signature`` as every ``before_publish`` hook left it."""
        for hook in self._by_point["before_publish"]:
            try:
                replaced: object = hook.before_publish(signature)
            except Exception:
                self._failed(hook, "before_publish")
                continue
            if replaced is not None:
                if not isinstance(replaced, Signature):
                    log.error("hook %r returned %s from before_publish, not a Signature; ignored",
                              hook, type(replaced).__name__)
                    continue
                if replaced.uuid != signature.uuid:
                    log.error("hook %r changed the task's UUID in before_publish; ignored", hook)
                    continue
                signature = replaced
        return signature

    def before_publish_all(self, signatures: Sequence[Signature]) -> list[Signature]:
        """``before_publish`` for each of ``signatures``."""
        return [self.before_publish(s) for s in signatures]

    def before_run(self, call: TaskCall) -> RunDecision | None:
        """The first decision a ``before_run`` hook returns, or None to run the task."""
        for hook in self._by_point["before_run"]:
            try:
                decision: object = hook.before_run(call)
            except Exception:
                self._failed(hook, "before_run")
                continue
            if decision is not None:
                if not isinstance(decision, Skip | Delay):
                    log.error("hook %r returned %s from before_run, not Skip or Delay; ignored",
                              hook, type(decision).__name__)
                    continue
                return decision
        return None

    def on_start(self, call: TaskCall) -> None:
        for hook in self._by_point["on_start"]:
            try:
                hook.on_start(call)
            except Exception:
                self._failed(hook, "on_start")

    def after_run(self, call: TaskCall, outcome: Outcome) -> None:
        for hook in self._by_point["after_run"]:
            try:
                hook.after_run(call, outcome)
            except Exception:
                self._failed(hook, "after_run")

    def on_failure(self, call: TaskCall, error: str) -> None:
        for hook in self._by_point["on_failure"]:
            try:
                hook.on_failure(call, error)
            except Exception:
                self._failed(hook, "on_failure")

    def on_retry(self, call: TaskCall, error: str, delay: float) -> None:
        for hook in self._by_point["on_retry"]:
            try:
                hook.on_retry(call, error, delay)
            except Exception:
                self._failed(hook, "on_retry")

    def on_dead_letter(self, queue: str, reason: str, signature: Signature | None) -> None:
        for hook in self._by_point["on_dead_letter"]:
            try:
                hook.on_dead_letter(queue, reason, signature)
            except Exception:
                self._failed(hook, "on_dead_letter")

    def worker_started(self, worker: WorkerInfo) -> None:
        for hook in self._by_point["worker_started"]:
            try:
                hook.worker_started(worker)
            except Exception:
                self._failed(hook, "worker_started")

    def worker_stopped(self, worker: WorkerInfo) -> None:
        for hook in self._by_point["worker_stopped"]:
            try:
                hook.worker_stopped(worker)
            except Exception:
                self._failed(hook, "worker_stopped")
