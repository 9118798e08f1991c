"""Handling one delivery: decode, run the task, record its state, send follow-ups, settle.

The order is what makes delivery at-least-once: the result and every follow-up message (callbacks,
retry, chord callback) are stored before the delivery is acknowledged. If any of that fails, the
delivery is given back (``nack``) and the task runs again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from machinery._speedups import decode
from machinery.backends.base import ResultBackend
from machinery.brokers.base import Broker, Delivery, OutgoingMessage
from machinery.config import Config
from machinery.errors import ArgumentError, DecodeError, LimitExceeded, Retry, TaskNotRegistered
from machinery.gowire import fibonacci_next, go_typed_results
from machinery.hooks import Delay, Hooks, Outcome, RunDecision, TaskCall
from machinery.jsonvalues import FrozenDict, JSONValue, freeze
from machinery.limits import check_fanout, check_size
from machinery.progress import ProgressTracker
from machinery.registry import Registry
from machinery.routing import Router
from machinery.signature import Signature
from machinery.states import TaskResult, TaskState
from machinery.unregistered import UnregisteredPolicy, ignored_by_sender
from machinery.watchdog import Abandoned, Watchdog

__all__ = ["RETRIES_HEADER", "Executor", "error_text"]

log = logging.getLogger("machinery.worker")

#: Signature header counting the retries so far (drives the back-off when retry_timeout is 0).
RETRIES_HEADER = "machinery_retries"

#: Seconds before a message delivered again while its first delivery still runs here is offered again.
RUNNING_ELSEWHERE_DELAY = 1.0

#: Seconds before a delivery whose follow-ups could not be stored is tried again.
_SETTLE_RETRY_DELAY = 1.0


def error_text(exc: BaseException) -> str:
    """The text recorded for a failed task and prepended to its error callbacks' args:
    ``str(exc)``, or the exception's class name when that is empty. A ``BaseException`` that is not
    an ``Exception`` (``SystemExit``, ``KeyboardInterrupt``...) is always named: ``SystemExit: 3``."""
    text = str(exc)
    if not isinstance(exc, Exception):
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text or type(exc).__name__


class NotJSONResult(TypeError):
    """A task returned something that is not a JSON value."""


def _check_finite(value: JSONValue) -> None:
    if type(value) is bytes:
        raise NotJSONResult("returned bytes, which a stored result cannot carry (return base64 text)")
    if type(value) is float:
        if not math.isfinite(value):
            raise NotJSONResult(f"returned {value!r}, which JSON cannot carry")
    elif type(value) is tuple:
        for item in value:
            _check_finite(item)
    elif type(value) is FrozenDict:
        for item in value.values():
            _check_finite(item)


def as_json_result(value: object, task_name: str) -> JSONValue:
    """``value`` as a frozen JSON value, or ``NotJSONResult`` explaining why it is not one."""
    try:
        frozen = freeze(value, "result")
    except (TypeError, ValueError) as exc:
        raise NotJSONResult(f"task {task_name} returned a value that is not JSON: {exc}") from None
    try:
        _check_finite(frozen)
    except NotJSONResult as exc:
        raise NotJSONResult(f"task {task_name} {exc}") from None
    return frozen


class Executor:
    """Runs deliveries for a worker. Thread-safe: each call to ``process`` stands alone."""

    def __init__(
        self,
        config: Config,
        registry: Registry,
        broker: Broker,
        backend: ResultBackend | None,
        progress: ProgressTracker | None = None,
        *,
        hooks: Hooks | None = None,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.config = config
        self.hooks = hooks if hooks is not None else Hooks()
        self.watchdog = watchdog
        """Enforces time limits; without it, limits are not enforced."""
        self.registry = registry
        self.broker = broker
        self.backend = backend
        self.default_queue = config.default_queue
        self.router = Router(config)
        self._running: dict[str, int] = {}
        """Task UUIDs running in this executor (how many runs of each)."""
        self._running_lock = threading.Lock()
        self.unregistered = UnregisteredPolicy(config)
        self.go = self.router.go
        self.progress = progress
        """Writes RECEIVED/STARTED for slow tasks; without it (and with track_started) every task
        gets them written here, synchronously."""
        self.track_started = config.track_started and backend is not None and progress is None

    # -- helpers ------------------------------------------------------------------------------

    def _record(self, sig: Signature, state: TaskState, result: JSONValue = None, error: str = "") -> None:
        if self.backend is not None:
            self.backend.set(TaskResult(sig.uuid, state, sig.name, result, error, time.time()))

    def _message(self, sig: Signature, delay: float = 0.0, queue: str | None = None) -> OutgoingMessage:
        if self.hooks.wants_publish:
            sig = self.hooks.before_publish(sig)
        return self.router.message(sig, delay, queue=queue)

    def _publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if messages:  # publish_many even for one: it keeps the headers and the task name
            self.broker.publish_many(messages)

    def _log(self, sig: Signature, state: TaskState, started: float, detail: str = "") -> None:
        if log.isEnabledFor(logging.INFO):
            ms = (time.perf_counter() - started) * 1000.0
            extra = f": {detail}" if detail else ""
            log.info("task %s[%s] %s in %.1f ms%s", sig.name, sig.uuid, state, ms, extra)

    # -- one delivery -------------------------------------------------------------------------

    def process(self, delivery: Delivery) -> bool:
        """Process ``delivery`` to the end. True: its outcome and follow-ups are stored and the
        caller must ``ack`` it (the worker's settler acks in batches); False: it was settled here
        (given back or dead-lettered)."""
        body = delivery.body
        router = self.router
        try:
            check_size(len(body), router.max_message_bytes)
        except LimitExceeded as exc:
            return self._refuse(delivery, str(exc))
        if router.signer is not None:
            why = router.signer.check(delivery.headers, body)
            if why:
                return self._refuse(delivery, why)
        try:
            sig = decode(body)
        except DecodeError as exc:
            return self._refuse(delivery, f"undecodable message: {exc}")
        try:
            check_fanout(sig, router.max_fanout)
        except LimitExceeded as exc:
            if self.progress is not None:
                self.progress.finish(delivery)  # first: no RECEIVED may land after the FAILURE
            self._record(sig, TaskState.FAILURE, error=f"LimitExceeded: {exc}")
            return self._refuse(delivery, str(exc), sig)
        try:
            task = self.registry.get(sig.name)
        except TaskNotRegistered:
            self._not_registered(delivery, sig)
            return False
        uuid = sig.uuid
        if delivery.delivery_count > 1:
            if uuid in self._running:
                # Its first delivery still runs here (RabbitMQ's consumer_timeout closed the channel
                # under it): this copy waits until that run has recorded its outcome.
                log.warning("task %s[%s] delivered again while it still runs here; holding it back",
                            sig.name, uuid)
                self.broker.nack(delivery, delay=RUNNING_ELSEWHERE_DELAY)
                return False
            if self.backend is not None:
                try:
                    if self._already_finished(delivery, sig):
                        return True
                except Exception:
                    log.exception("task %s[%s]: could not look up its state; running it again", sig.name, uuid)
        running = self._running
        with self._running_lock:
            running[uuid] = running.get(uuid, 0) + 1
        try:
            if self.hooks.wants_run:
                return self._run_hooked(delivery, sig, task.run)
            self._run(delivery, sig, task.run)
        except Exception:
            log.exception("task %s[%s]: could not store its outcome; it will run again", sig.name, uuid)
            self._give_back(delivery)
            return False
        finally:
            with self._running_lock:
                left = running.pop(uuid) - 1
                if left:
                    running[uuid] = left
        return True

    def _already_finished(self, delivery: Delivery, sig: Signature) -> bool:
        """A message delivered again whose task already has its final state (its first run
        finished, but the ack never reached the broker: a worker killed just before it, or
        RabbitMQ's ``consumer_timeout`` closing the channel under a long task) is not run again.
        Its follow-ups are sent again from the stored outcome (they may have been lost with the
        ack: at least once), then it is acked. True when that was done."""
        assert self.backend is not None
        record = self.backend.get(sig.uuid)
        if record is None or not record.ready:
            return False
        started = time.perf_counter()
        log.warning(
            "task %s[%s] delivered again (delivery %d) but already %s: not running it again",
            sig.name, sig.uuid, delivery.delivery_count, record.state,
        )
        if record.state is TaskState.SUCCESS:
            self._succeeded(delivery, sig, record.result, started, None)
        else:
            self._publish([self._message(cb.with_result(record.error)) for cb in sig.on_error])
        return True

    def _refuse(self, delivery: Delivery, reason: str, sig: Signature | None = None) -> bool:
        """Dead-letter ``delivery`` with ``reason`` (logged at ERROR); False: settled here."""
        log.error("dead-lettering a message from queue %s: %s", delivery.queue, reason)
        if self.progress is not None:
            self.progress.finish(delivery)
        self.broker.dead_letter(delivery, reason)
        self.hooks.on_dead_letter(delivery.queue, reason, sig)
        return False

    def _run_hooked(self, delivery: Delivery, sig: Signature, run: Callable[[tuple[JSONValue, ...]], object]) -> bool:
        """``process`` with hooks registered: ``before_run`` may decide, ``after_run`` always follows."""
        hooks = self.hooks
        call = TaskCall(sig, delivery.queue, delivery.delivery_count)
        started = time.perf_counter()
        decision = hooks.before_run(call)
        outcome: Outcome | None = None
        ran = False
        try:
            if decision is not None:
                outcome = self._decided(delivery, sig, decision, started)
                return outcome.state is not TaskState.PENDING
            hooks.on_start(call)
            ran = True
            outcome = self._run(delivery, sig, run, call)
            return True
        except Exception as exc:
            log.exception("task %s[%s]: could not store its outcome; it will run again", sig.name, sig.uuid)
            self._give_back(delivery)
            outcome = Outcome(TaskState.PENDING, time.perf_counter() - started, error=error_text(exc), ran=ran)
            return False
        finally:
            if outcome is None:  # interrupted (a BaseException is on its way out)
                outcome = Outcome(TaskState.PENDING, time.perf_counter() - started, error="interrupted", ran=ran)
            hooks.after_run(call, outcome)

    def _decided(self, delivery: Delivery, sig: Signature, decision: RunDecision, started: float) -> Outcome:
        """Carry out a ``before_run`` hook's decision instead of running the task."""
        if isinstance(decision, Delay):
            if self.progress is not None:
                self.progress.give_back(delivery)
            self.broker.nack(delivery, delay=max(decision.seconds, 0.0))
            self._log(sig, TaskState.PENDING, started, f"delayed {decision.seconds:g}s by a hook")
            return Outcome(TaskState.PENDING, time.perf_counter() - started, ran=False)
        if self.progress is not None:
            self.progress.finish(delivery)
        self._record(sig, decision.state, error=decision.reason)
        self._log(sig, decision.state, started, decision.reason)
        return Outcome(decision.state, time.perf_counter() - started, error=decision.reason, ran=False)

    def _give_back(self, delivery: Delivery) -> None:
        try:
            self.broker.nack(delivery, delay=_SETTLE_RETRY_DELAY)
        except Exception:
            log.exception("could not give back a delivery from %s; its lease will expire", delivery.queue)

    def _not_registered(self, delivery: Delivery, sig: Signature) -> None:
        if ignored_by_sender(delivery.body):
            log.warning("task %s[%s] is not registered here; dropped as it asks (IgnoreWhenTaskNotRegistered)",
                        sig.name, sig.uuid)
            if self.progress is not None:
                self.progress.finish(delivery)
            self.broker.ack(delivery)
            return
        decision = self.unregistered.decide(delivery)
        if not decision.give_up:
            log.log(logging.WARNING if delivery.delivery_count == 1 else logging.DEBUG,
                    "task %s[%s] is not registered here (delivery %d); offered again in %.2f s",
                    sig.name, sig.uuid, delivery.delivery_count, decision.delay)
            if self.progress is not None:
                self.progress.give_back(delivery)
            self.broker.nack(delivery, delay=decision.delay)
            return
        reason = (f"task {sig.name!r} is not registered (no worker took it in {decision.waited:.0f} s, "
                  f"{delivery.delivery_count} deliveries)")
        log.error("dead-lettering %s from queue %s: %s", sig.uuid, delivery.queue, reason)
        if self.progress is not None:
            self.progress.finish(delivery)
        self._record(sig, TaskState.FAILURE, error=reason)
        self.broker.dead_letter(delivery, reason)
        self.hooks.on_dead_letter(delivery.queue, reason, sig)

    def _run(
        self,
        delivery: Delivery,
        sig: Signature,
        run: Callable[[tuple[JSONValue, ...]], object],
        call: TaskCall | None = None,
    ) -> Outcome | None:
        """Run the task and store its outcome; the outcome for the hooks when ``call`` is given."""
        started = time.perf_counter()
        progress = self.progress
        if progress is not None:
            progress.started(delivery, sig)
        elif self.track_started:
            self._record(sig, TaskState.RECEIVED)
            self._record(sig, TaskState.STARTED)
        try:
            watchdog = self.watchdog
            limits = self.registry.limits(sig.name).overridden_by(sig.headers) if watchdog is not None else None
            if watchdog is not None and limits is not None and limits.any:
                watch = watchdog.watch(limits, (delivery, sig), f"task {sig.name}[{sig.uuid}]")
                try:
                    value = run(sig.args)
                finally:
                    watch.finish()  # raises Abandoned when the call was given up at its hard limit
            else:
                value = run(sig.args)
            result = as_json_result(value, sig.name)
            if self.go:
                go_typed_results(result, f"task {sig.name} returned a value Go cannot read: result")
        except Abandoned:
            raise
        except BaseException as exc:
            # Any BaseException a task raises (sys.exit, KeyboardInterrupt, GeneratorExit...) is its
            # failure. Tasks run on task threads, and Python delivers signals to the main thread
            # only, so a KeyboardInterrupt here was raised by the task itself; on the main thread
            # (an embedding that runs tasks there) it is a real Ctrl-C and is passed on.
            if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
                raise
            if progress is not None:
                progress.finish(delivery)
            try:
                return self._failed(delivery, sig, exc, started, call)
            except LimitExceeded as limit:
                return self._over_limit(sig, limit, started, call)
        if progress is not None:
            progress.finish(delivery)
        try:
            return self._succeeded(delivery, sig, result, started, call)
        except LimitExceeded as limit:
            return self._over_limit(sig, limit, started, call)

    def _over_limit(self, sig: Signature, exc: LimitExceeded, started: float, call: TaskCall | None) -> Outcome | None:
        """A follow-up (a callback with the result or error prepended) was refused by a limit:
        the task fails for good; nothing was sent."""
        error = f"LimitExceeded: {exc}"
        self._record(sig, TaskState.FAILURE, error=error)
        self._log(sig, TaskState.FAILURE, started, error)
        if call is None:
            return None
        self.hooks.on_failure(call, error)
        return Outcome(TaskState.FAILURE, time.perf_counter() - started, error=error)

    def _succeeded(
        self, delivery: Delivery, sig: Signature, result: JSONValue, started: float, call: TaskCall | None
    ) -> Outcome | None:
        follow_ups = [
            self._message(cb if sig.immutable else self._with_result(cb, result)) for cb in sig.on_success
        ]
        chord_group = ""
        callback = sig.chord_callback
        if callback is not None and sig.group_uuid and self.backend is not None:
            results = self.backend.group_add_result(sig.group_uuid, sig.uuid, result)
            if results is not None:
                if not callback.immutable and self.go:  # Go appends the members' results, skipping none
                    callback = callback.with_args((*callback.args, *[r for r in results if r is not None]))
                elif not callback.immutable:
                    callback = callback.with_args((*results, *callback.args))
                follow_ups.append(self._message(callback))
                chord_group = sig.group_uuid
        self._record(sig, TaskState.SUCCESS, result)
        self._publish(follow_ups)
        if chord_group and self.backend is not None:
            self.backend.group_done(chord_group)
        self._log(sig, TaskState.SUCCESS, started)
        if call is None:
            return None
        return Outcome(TaskState.SUCCESS, time.perf_counter() - started, result)

    def time_limit_exceeded(self, delivery: Delivery, sig: Signature, limit: float, started: float) -> None:
        """Record a call given up at its hard time limit as a ``FAILURE`` and send its error
        callbacks (no retry: a call that hung once would likely hang again). The caller acks."""
        if self.progress is not None:
            self.progress.finish(delivery)
        error = f"TimeLimitExceeded: task {sig.name} ran past its time limit of {limit:g}s"
        self._record(sig, TaskState.FAILURE, error=error)
        self._publish([self._message(cb.with_result(error)) for cb in sig.on_error])
        self._log(sig, TaskState.FAILURE, started, error)

    def _with_result(self, callback: Signature, result: JSONValue) -> Signature:
        """A success callback with the result added: prepended (this project's rule) or, in Go
        mode, appended as Go Machinery v1's worker does (a ``None`` result adds nothing there)."""
        if not self.go:
            return callback.with_result(result)
        return callback if result is None else callback.with_args((*callback.args, result))

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

    def _failed(
        self, delivery: Delivery, sig: Signature, exc: BaseException, started: float, call: TaskCall | None
    ) -> Outcome | None:
        error = error_text(exc)
        # Arguments that do not fit the task fail the same way every time: never retried.
        if sig.retry_count > 0 and not isinstance(exc, ArgumentError):
            again, delay = self._retry(sig, exc)
            self._record(sig, TaskState.RETRY, error=error)
            # Back to the queue it came from, whatever its routing key names (Go writes its binding key there).
            self._publish([self._message(again, delay, delivery.queue)])
            self._log(sig, TaskState.RETRY, started, f"{error} (again in {delay:g}s, {again.retry_count} left)")
            if call is None:
                return None
            self.hooks.on_retry(call, error, delay)
            return Outcome(TaskState.RETRY, time.perf_counter() - started, error=error)
        self._record(sig, TaskState.FAILURE, error=error)
        self._publish([self._message(cb.with_result(error)) for cb in sig.on_error])
        self._log(sig, TaskState.FAILURE, started, error)
        if call is None:
            return None
        self.hooks.on_failure(call, error)
        return Outcome(TaskState.FAILURE, time.perf_counter() - started, error=error)
