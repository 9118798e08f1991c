"""What follows a run: the ``Outcome`` the worker's settler (``settling.py``) carries out, and
``Outcomes``, which builds it once ``Executor.process`` (``execution.py``) knows how a task ended.

An ``Outcome`` holds the task's record (its final or ``RETRY`` state) and its follow-up messages:
on success each ``on_success`` callback with the result added (unless immutable) and, when this
task completes its chord's group, the chord callback with every member's result; on failure a
retry (while ``retry_count > 0``, back to the queue it came from after a delay) or else each
``on_error`` callback with the error text prepended. A follow-up refused by a limit fails the task
for good, with nothing to send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from machinery.backends.base import GoResults, ResultBackend
from machinery.brokers.base import Delivery, OutgoingMessage, PendingPublish
from machinery.config import Config
from machinery.errors import ArgumentError, LimitExceeded, Retry
from machinery.gowire import fibonacci_next
from machinery.hooks import Hooks, TaskCall
from machinery.jsonvalues import JSONValue
from machinery.routing import Router
from machinery.signature import Signature
from machinery.states import TaskResult, TaskState
from machinery.unregistered import ignoring_uuids

__all__ = ["RETRIES_HEADER", "Outcome", "Outcomes", "error_text", "log_run"]

log = logging.getLogger("machinery.worker")

#: Signature header counting the retries so far (drives the back-off when retry_timeout is 0).
RETRIES_HEADER = "machinery_retries"


def error_text(exc: BaseException) -> str:
    """The text recorded for a failed task and prepended to its error callbacks' args:
    ``str(exc)``, or the exception's class name when that is empty. A ``BaseException`` that is not
    an ``Exception`` (``SystemExit``, ``KeyboardInterrupt``...) is always named: ``SystemExit: 3``.
    Lone surrogates, which no store can encode, are escaped."""
    text = str(exc)
    if not isinstance(exc, Exception):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    else:
        text = text or type(exc).__name__
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def log_run(sig: Signature, state: TaskState, started: float, detail: str = "") -> None:
    """Log at INFO how ``sig``'s run ended and how long it took since ``started`` (``perf_counter``)."""
    if log.isEnabledFor(logging.INFO):
        ms = (time.perf_counter() - started) * 1000.0
        extra = f": {detail}" if detail else ""
        log.info("task %s[%s] %s in %.1f ms%s", sig.name, sig.uuid, state, ms, extra)


@dataclass(slots=True)
class Outcome:
    """What settling a processed delivery takes, in this order: store ``records`` (the task's
    final or RETRY state), publish ``follow_ups`` and wait until the broker accepted them, forget
    ``chord_group``'s bookkeeping (its callback is among the follow-ups), then ack ``delivery``."""

    delivery: Delivery
    task_uuid: str = ""
    records: Sequence[TaskResult] = ()
    follow_ups: Sequence[OutgoingMessage] = ()
    chord_group: str = ""
    publishing: PendingPublish | None = None
    """The follow-ups' publish once begun (its ``wait`` precedes the ack)."""
    state: TaskState = TaskState.PENDING
    """How the run ended (for the hooks' ``after_run``; PENDING when nothing ran)."""
    result: JSONValue = None
    error: str = ""


class Outcomes:
    """Builds the ``Outcome`` of a task that ended (an executor's, thread-safe). Each method tells
    the hooks (``on_failure``/``on_retry``) when given the run's ``call``, and logs how it ended. A
    follow-up over a limit raises ``LimitExceeded`` out of ``succeeded``, ``failed`` and ``stored``:
    the caller answers with ``over_limit``."""

    def __init__(self, config: Config, router: Router, backend: ResultBackend | None, hooks: Hooks) -> None:
        self.config = config
        self.router = router
        self.backend = backend
        self.hooks = hooks
        self.go = router.go
        self._go_results = backend if self.go and isinstance(backend, GoResults) else None  # Go's Redis layout

    def final(
        self, sig: Signature, state: TaskState, result: JSONValue = None, error: str = ""
    ) -> tuple[TaskResult, ...]:
        """``sig``'s record in ``state`` to store (none without a result store)."""
        if self.backend is None:
            return ()
        return (TaskResult(sig.uuid, state, sig.name, result, error, time.time()),)

    def message(
        self, sig: Signature, delay: float = 0.0, queue: str | None = None, ignoring: frozenset[str] = frozenset()
    ) -> OutgoingMessage:
        """``sig``'s message; the signatures whose UUIDs are in ``ignoring`` (those of the message
        being processed that set ``IgnoreWhenTaskNotRegistered``) keep that flag."""
        if self.hooks.wants_publish:
            sig = self.hooks.before_publish(sig)
        return self.router.message(sig, delay, queue=queue, ignoring=ignoring)

    def skipped(self, delivery: Delivery, sig: Signature, state: TaskState, reason: str, started: float) -> Outcome:
        """A task a hook decided not to run (``Skip``): its ``state`` recorded, with no follow-ups."""
        log_run(sig, state, started, reason)
        return Outcome(delivery, sig.uuid, self.final(sig, state, error=reason), state=state, error=reason)

    def over_limit(
        self, delivery: Delivery, sig: Signature, exc: LimitExceeded, started: float, call: TaskCall | None = None
    ) -> Outcome:
        """A follow-up (a callback with the result or error prepended) was refused by a limit:
        the task fails for good; nothing is sent."""
        error = f"LimitExceeded: {exc}"
        log_run(sig, TaskState.FAILURE, started, error)
        if call is not None:
            self.hooks.on_failure(call, error)
        return Outcome(delivery, sig.uuid, self.final(sig, TaskState.FAILURE, error=error),
                       state=TaskState.FAILURE, error=error)

    def succeeded(
        self, delivery: Delivery, sig: Signature, result: JSONValue, started: float, call: TaskCall | None = None,
        *, each: tuple[JSONValue, ...] | None = None,
    ) -> Outcome:
        """``each``: the task's results as Go's list, when a Go worker stored them (go mode: each one
        is passed on); else the one ``result`` (none for ``None``)."""
        if each is None and self.go:
            each = () if result is None else (result,)
        ignoring = ignoring_uuids(delivery.body) if sig.on_success or sig.chord_callback is not None else frozenset()
        follow_ups = [
            self.message(cb if sig.immutable else self._with_result(cb, result, each), ignoring=ignoring)
            for cb in sig.on_success
        ] if sig.on_success else []
        chord_group = ""
        callback = sig.chord_callback
        if callback is not None and sig.group_uuid and self.backend is not None:
            if self._go_results is not None and each is not None:
                members = self._go_results.group_add_results(sig.group_uuid, sig.uuid, each)
                results = None if members is None else [value for values in members for value in values]
            else:
                results = self.backend.group_add_result(sig.group_uuid, sig.uuid, result)
                if results is not None and self.go:
                    results = [r for r in results if r is not None]
            if results is not None:
                if not callback.immutable and self.go:  # Go appends each result of each member
                    callback = callback.with_args((*callback.args, *results))
                elif not callback.immutable:
                    callback = callback.with_args((*results, *callback.args))
                follow_ups.append(self.message(callback, ignoring=ignoring))
                chord_group = sig.group_uuid
        log_run(sig, TaskState.SUCCESS, started)
        return Outcome(delivery, sig.uuid, self.final(sig, TaskState.SUCCESS, result), follow_ups, chord_group,
                       state=TaskState.SUCCESS, result=result)

    def stored(self, delivery: Delivery, sig: Signature, record: TaskResult, started: float) -> Outcome:
        """The follow-ups, sent again, of a task whose final state ``record`` an earlier run stored
        (its delivery came back unacked): nothing to store; on success its callbacks and chord
        bookkeeping from the stored result (Go's list of results when a Go worker stored them), else
        its error callbacks."""
        if record.state is TaskState.SUCCESS:
            each = self._go_results.results_of(sig.uuid) if self._go_results is not None else None
            outcome = self.succeeded(delivery, sig, record.result, started, each=each)
            outcome.records = ()  # already stored
            return outcome
        ignoring = ignoring_uuids(delivery.body)
        return Outcome(delivery, sig.uuid, (), [self.message(cb.with_result(record.error), ignoring=ignoring)
                                                for cb in sig.on_error])

    def time_limit_exceeded(self, delivery: Delivery, sig: Signature, limit: float, started: float) -> Outcome:
        """A call given up at its hard time limit: its ``FAILURE`` record and its error callbacks
        (no retry: a call that hung once would likely hang again)."""
        error = f"TimeLimitExceeded: task {sig.name} ran past its time limit of {limit:g}s"
        log_run(sig, TaskState.FAILURE, started, error)
        try:
            ignoring = ignoring_uuids(delivery.body)
            follow_ups = [self.message(cb.with_result(error), ignoring=ignoring) for cb in sig.on_error]
        except LimitExceeded as exc:
            return self.over_limit(delivery, sig, exc, started)
        return Outcome(delivery, sig.uuid, self.final(sig, TaskState.FAILURE, error=error), follow_ups)

    def _with_result(self, callback: Signature, result: JSONValue, each: tuple[JSONValue, ...] | None) -> Signature:
        """A success callback with the result added: prepended (this project's rule) or, in Go
        mode, ``each`` result appended as Go Machinery v1's worker does (none for a ``None`` result)."""
        if each is None:
            return callback.with_result(result)
        return callback.with_args((*callback.args, *each)) if each else callback

    def _retry(self, sig: Signature, exc: BaseException) -> tuple[Signature, float]:
        """The signature to publish again and its delay: the ``Retry`` countdown, else (Go mode) the
        next Fibonacci ``retry_timeout`` as Go does, else ``retry_timeout``, else an exponential back-off."""
        countdown = exc.countdown if isinstance(exc, Retry) else None
        if self.go:
            timeout = fibonacci_next(sig.retry_timeout)
            delay = max(countdown, 0.0) if countdown is not None else float(timeout)
            eta = datetime.now(timezone.utc) + timedelta(seconds=delay)
            return sig.replace(retry_count=sig.retry_count - 1, retry_timeout=timeout, eta=eta), delay
        retries = sig.headers.get(RETRIES_HEADER, 0)
        done = retries if isinstance(retries, int) and not isinstance(retries, bool) else 0
        if countdown is not None:
            delay = max(countdown, 0.0)
        elif sig.retry_timeout > 0:
            delay = float(sig.retry_timeout)
        else:
            delay = min(2.0 ** min(done, 32), self.config.retry_backoff_max)
        again = sig.replace(
            retry_count=sig.retry_count - 1, headers={**sig.headers, RETRIES_HEADER: done + 1}, eta=None
        )
        return again, delay

    def failed(
        self, delivery: Delivery, sig: Signature, exc: BaseException, started: float, call: TaskCall | None = None
    ) -> Outcome:
        """The task raised ``exc``: a retry while ``retry_count > 0`` (never for an ``ArgumentError``),
        else its ``FAILURE`` record and its error callbacks."""
        error = error_text(exc)
        # Arguments that do not fit the task fail the same way every time: never retried.
        if sig.retry_count > 0 and not isinstance(exc, ArgumentError):
            again, delay = self._retry(sig, exc)
            log_run(sig, TaskState.RETRY, started, f"{error} (again in {delay:g}s, {again.retry_count} left)")
            if call is not None:
                self.hooks.on_retry(call, error, delay)
            # Back to the queue it came from, whatever its routing key names (Go writes its binding key there).
            return Outcome(delivery, sig.uuid, self.final(sig, TaskState.RETRY, error=error),
                           [self.message(again, delay, delivery.queue, ignoring_uuids(delivery.body))],
                           state=TaskState.RETRY, error=error)
        log_run(sig, TaskState.FAILURE, started, error)
        ignoring = ignoring_uuids(delivery.body)
        follow_ups = [self.message(cb.with_result(error), ignoring=ignoring) for cb in sig.on_error]
        if call is not None:
            self.hooks.on_failure(call, error)
        return Outcome(delivery, sig.uuid, self.final(sig, TaskState.FAILURE, error=error), follow_ups,
                       state=TaskState.FAILURE, error=error)
