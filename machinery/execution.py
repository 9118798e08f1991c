"""Handling one delivery: check and decode it, hold back a copy delivered again, run its task, and
hand what must follow (an ``Outcome``, built by ``outcomes.py``) to the worker's settler
(``settling.py``), which stores, publishes and acknowledges it, in batches.

The order is what makes delivery at-least-once: the result, then every follow-up message
(callbacks, retry, chord callback), are stored before the delivery is acknowledged. If any of that
fails, the delivery is given back (``nack``) and the task runs again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from machinery._speedups import decode
from machinery.backends.base import ResultBackend
from machinery.brokers.base import Broker, Delivery
from machinery.config import Config
from machinery.errors import DecodeError, LimitExceeded, TaskNotRegistered
from machinery.gowire import go_typed_results
from machinery.hooks import Delay, Hooks, RunDecision, TaskCall
from machinery.hooks import Outcome as RunOutcome
from machinery.jsonvalues import FrozenDict, JSONValue, freeze
from machinery.limits import check_message_fanout, check_size
from machinery.outcomes import Outcome, Outcomes, error_text, log_run
from machinery.progress import ProgressTracker
from machinery.registry import Registry
from machinery.routing import Router
from machinery.signature import Signature
from machinery.states import TaskResult, TaskState
from machinery.unregistered import UnregisteredPolicy, ignored_by_sender
from machinery.watchdog import Abandoned, Watchdog

__all__ = ["Executor", "Outcome"]

log = logging.getLogger("machinery.worker")

#: Seconds before a message delivered again while its first delivery still runs here is offered again.
RUNNING_ELSEWHERE_DELAY = 1.0

#: Seconds before a delivery whose outcome could not be settled is tried again.
_SETTLE_RETRY_DELAY = 1.0


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
        self.router = Router(config, registry)
        self._running: dict[str, int] = {}
        """Task UUIDs running in this executor (how many runs of each)."""
        self._running_lock = threading.Lock()
        self.unregistered = UnregisteredPolicy(config)
        self.go = self.router.go
        self.outcomes = Outcomes(config, self.router, backend, self.hooks)
        """Builds the ``Outcome`` of each run that ended."""
        self.progress = progress
        """Writes RECEIVED/STARTED for slow tasks; without it (and with track_started) every task
        gets them written here, synchronously."""
        self.track_started = config.track_started and backend is not None and progress is None

    # -- helpers ------------------------------------------------------------------------------

    def _record(self, sig: Signature, state: TaskState, result: JSONValue = None, error: str = "") -> None:
        if self.backend is not None:
            self.backend.set(TaskResult(sig.uuid, state, sig.name, result, error, time.time()))

    # -- one delivery -------------------------------------------------------------------------

    def process(self, delivery: Delivery) -> Outcome | None:
        """Run ``delivery``'s task. An ``Outcome``: what the caller must store, publish and then
        ack (the worker's settler does, in batches); None: it was settled here (given back,
        dead-lettered or dropped)."""
        body = delivery.body
        router = self.router
        try:
            check_size(len(body), router.max_message_bytes)
        except LimitExceeded as exc:
            self._refuse(delivery, str(exc))
            return None
        if router.signer is not None:
            why = router.signer.check(delivery.headers, body)
            if why:
                self._refuse(delivery, why)
                return None
        try:
            sig = decode(body)
        except DecodeError as exc:
            self._refuse(delivery, f"undecodable message: {exc}")
            return None
        try:
            check_message_fanout(sig, len(body), router.max_fanout)
        except LimitExceeded as exc:
            if self.progress is not None:
                self.progress.finish(delivery)  # first: no RECEIVED may land after the FAILURE
            self._record(sig, TaskState.FAILURE, error=f"LimitExceeded: {exc}")
            self._refuse(delivery, str(exc), sig)
            return None
        try:
            task = self.registry.get(sig.name)
        except TaskNotRegistered:
            self._not_registered(delivery, sig)
            return None
        uuid = sig.uuid
        if delivery.delivery_count > 1:
            if uuid in self._running:
                # Its first delivery still runs here (RabbitMQ's consumer_timeout closed the channel
                # under it): this copy waits until that run has recorded its outcome.
                log.warning("task %s[%s] delivered again while it still runs here; holding it back",
                            sig.name, uuid)
                if self.progress is not None:
                    self.progress.give_back(delivery)
                self.broker.nack(delivery, delay=RUNNING_ELSEWHERE_DELAY)
                return None
            again = self._delivered_again(delivery, sig)
            if again is not None:
                return again
        running = self._running
        with self._running_lock:
            running[uuid] = running.get(uuid, 0) + 1
        try:
            if self.hooks.wants_run:
                return self._run_hooked(delivery, sig, task.run)
            return self._run(delivery, sig, task.run)
        finally:
            with self._running_lock:
                left = running.pop(uuid) - 1
                if left:
                    running[uuid] = left

    def _delivered_again(self, delivery: Delivery, sig: Signature) -> Outcome | None:
        """A message delivered again whose first run finished but whose ack never reached the
        broker (a worker killed just before it, or RabbitMQ's ``consumer_timeout`` closing the
        channel under a long task) is not run again. If the store records its follow-ups as sent,
        it is only acked (an ``Outcome`` with nothing to store or send); if its task has a final
        state but its follow-ups are not recorded as sent, they are sent again from the stored
        outcome (at least once), then it is acked. None: run it (also when the store cannot tell)."""
        backend = self.backend
        if backend is None:
            return None
        try:
            if backend.follow_ups_sent(sig.uuid):
                log.info("task %s[%s] delivered again after its result and follow-ups were stored; not run again",
                         sig.name, sig.uuid)
                if self.progress is not None:
                    self.progress.finish(delivery)
                return Outcome(delivery, sig.uuid)
            record = backend.get(sig.uuid)
        except Exception as exc:
            log.warning("task %s[%s]: could not read its state (%s); running it again", sig.name, sig.uuid, exc)
            return None
        if record is None or not record.ready:
            return None
        started = time.perf_counter()
        log.warning(
            "task %s[%s] delivered again (delivery %d) but already %s: not running it again",
            sig.name, sig.uuid, delivery.delivery_count, record.state,
        )
        if self.progress is not None:
            self.progress.finish(delivery)
        try:
            return self.outcomes.stored(delivery, sig, record, started)
        except LimitExceeded as exc:
            log.error("task %s[%s]: its follow-ups are refused by a limit (%s); acked", sig.name, sig.uuid, exc)
            return Outcome(delivery, sig.uuid)

    def _refuse(self, delivery: Delivery, reason: str, sig: Signature | None = None) -> None:
        """Dead-letter ``delivery`` with ``reason`` (logged at ERROR); settled here."""
        log.error("dead-lettering a message from queue %s: %s", delivery.queue, reason)
        if self.progress is not None:
            self.progress.finish(delivery)
        self.broker.dead_letter(delivery, reason)
        self.hooks.on_dead_letter(delivery.queue, reason, sig)

    def _run_hooked(
        self, delivery: Delivery, sig: Signature, run: Callable[[tuple[JSONValue, ...]], object]
    ) -> Outcome | None:
        """``process`` with hooks registered: ``before_run`` may decide, ``after_run`` always
        follows (once the outcome is handed over for settling: its record is stored right after)."""
        hooks = self.hooks
        call = TaskCall(sig, delivery.queue, delivery.delivery_count)
        started = time.perf_counter()
        if not hooks.wants_outcome:  # nobody times the run or is told how it ended
            try:
                decision = hooks.before_run(call)
                if decision is not None:
                    return self._decided(delivery, sig, decision, started)[0]
                return self._run(delivery, sig, run, call)
            except Exception:
                self._unsettled(delivery, sig)
                return None
        decision = hooks.before_run(call)
        ran = False
        told: RunOutcome | None = None
        try:
            if decision is not None:
                outcome, told = self._decided(delivery, sig, decision, started)
                return outcome
            hooks.on_start(call)
            ran = True
            outcome = self._run(delivery, sig, run, call)
            told = RunOutcome(outcome.state, time.perf_counter() - started, outcome.result, error=outcome.error)
            return outcome
        except Exception as exc:
            self._unsettled(delivery, sig)
            told = RunOutcome(TaskState.PENDING, time.perf_counter() - started, error=error_text(exc), ran=ran)
            return None
        finally:
            if told is None:  # interrupted (a BaseException is on its way out)
                told = RunOutcome(TaskState.PENDING, time.perf_counter() - started, error="interrupted", ran=ran)
            hooks.after_run(call, told)

    def _decided(
        self, delivery: Delivery, sig: Signature, decision: RunDecision, started: float
    ) -> tuple[Outcome | None, RunOutcome]:
        """Carry out a ``before_run`` hook's decision instead of running the task: a ``Delay``
        gives the message back (None: settled here); a ``Skip`` is an ``Outcome`` recording its
        state, with no follow-ups."""
        if isinstance(decision, Delay):
            if self.progress is not None:
                self.progress.give_back(delivery)
            self.broker.nack(delivery, delay=max(decision.seconds, 0.0))
            log_run(sig, TaskState.PENDING, started, f"delayed {decision.seconds:g}s by a hook")
            return None, RunOutcome(TaskState.PENDING, time.perf_counter() - started, ran=False)
        if self.progress is not None:
            self.progress.finish(delivery)
        outcome = self.outcomes.skipped(delivery, sig, decision.state, decision.reason, started)
        return outcome, RunOutcome(decision.state, time.perf_counter() - started, error=decision.reason, ran=False)

    def _unsettled(self, delivery: Delivery, sig: Signature) -> None:
        """(In an ``except`` block) The outcome of ``delivery``'s run could not be handed over: it
        goes back to its queue to run again."""
        log.exception("task %s[%s]: could not settle its outcome; it will run again", sig.name, sig.uuid)
        self._give_back(delivery)

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
    ) -> Outcome:
        """Run the task: the ``Outcome`` to settle (hooks' ``on_failure``/``on_retry`` told when
        ``call`` is given)."""
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
                return self.outcomes.failed(delivery, sig, exc, started, call)
            except LimitExceeded as limit:
                return self.outcomes.over_limit(delivery, sig, limit, started, call)
        if progress is not None:
            progress.finish(delivery)
        try:
            return self.outcomes.succeeded(delivery, sig, result, started, call)
        except LimitExceeded as limit:
            return self.outcomes.over_limit(delivery, sig, limit, started, call)

    def time_limit_exceeded(self, delivery: Delivery, sig: Signature, limit: float, started: float) -> Outcome:
        """A call given up at its hard time limit: its ``FAILURE`` record and its error callbacks
        (no retry: a call that hung once would likely hang again), for the settler to store, send,
        then ack."""
        if self.progress is not None:
            self.progress.finish(delivery)
        return self.outcomes.time_limit_exceeded(delivery, sig, limit, started)
