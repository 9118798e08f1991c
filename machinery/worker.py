"""The Worker: fetches messages from its queues and runs them on a fixed pool of threads.

There is no fetching thread to hand messages over: a task thread that finds no fetched message
waiting fetches itself (one at a time; as many as there are free slots, plus a small prefetch) and
leaves the rest for the others. What follows a run (result stored, follow-ups published, then the
ack) is done in batches by the settler (``settling.py``), which also pauses the worker while the
result store is unreachable; one thread renews the leases of everything held (``leases.py``).
``launch()`` blocks and stops cleanly on SIGINT/SIGTERM (``foreground.py``); ``start()``/``stop()`` embed it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol, cast

from machinery.backends.base import ResultBackend
from machinery.brokers.base import Broker, Delivery
from machinery.config import Config
from machinery.execution import Executor
from machinery.foreground import run_in_foreground
from machinery.heartbeat import Heartbeat
from machinery.hooks import Hooks, WorkerInfo, worker_name
from machinery.leases import LeaseRenewer
from machinery.locations import describe_url
from machinery.progress import ProgressTracker
from machinery.registry import Registry
from machinery.settling import ACK_BATCH, Settler
from machinery.signature import Signature
from machinery.supervisor import EXIT_REPLACE_ME
from machinery.watchdog import Abandoned, Watch, Watchdog

__all__ = ["Worker", "WorkerApp"]

log = logging.getLogger("machinery.worker")

#: Seconds one fetch waits for a message before looking at the stop flag again.
FETCH_TIMEOUT = 1.0
#: Seconds between looks at whether a paused worker (result store unreachable) may resume.
PAUSE_CHECK = 0.05
#: Seconds before a delivery whose processing failed (its outcome could not be read or stored) runs again.
RETRY_DELAY = 1.0


class WorkerApp(Protocol):
    """What a worker needs of its application (``App`` has it; the worker does not import ``App``)."""

    @property
    def config(self) -> Config: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def broker(self) -> Broker: ...

    @property
    def backend(self) -> ResultBackend | None: ...

    @property
    def hooks(self) -> Hooks: ...


class Worker:
    """Consumes ``queues`` (the app's default queue when none are given) and runs the app's
    registered tasks on ``concurrency`` threads (``config.concurrency`` by default)."""

    def __init__(
        self,
        app: WorkerApp,
        *,
        concurrency: int | None = None,
        queues: Sequence[str] | None = None,
        prefetch: int | None = None,
        exit_on_time_limit: bool = False,
    ) -> None:
        config = app.config
        self.exit_on_time_limit = exit_on_time_limit
        """True in a worker process under a supervisor: a task given up at its hard time limit
        makes the process stop cleanly (its other tasks finish) and exit with ``EXIT_REPLACE_ME``,
        so the stuck thread goes with it and the supervisor starts a fresh process. False: the
        stuck thread is abandoned and a new task thread takes its place."""
        self.exit_code = 0
        self.app = app
        self.concurrency = concurrency if concurrency is not None else config.concurrency
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        self.queues = list(queues) if queues else [config.default_queue]
        self.prefetch = prefetch if prefetch is not None else max(1, config.prefetch_count)
        self._capacity = self.concurrency + self.prefetch
        self._hold_limit = 4 * self._capacity
        """Most deliveries held at once: fetched, running, or finished and being settled (a batch
        being written while the next one runs)."""
        self._ack_batch = max(1, min(ACK_BATCH, self.prefetch))
        lock = self._lock = threading.Lock()
        self._work = threading.Condition(lock)
        """Guards everything below; task threads wait on it for fetched messages."""
        self._ready: deque[Delivery] = deque()
        """Fetched and not started."""
        self._held: dict[int, Delivery] = {}
        """Every delivery not yet settled (its lease is renewed)."""
        self._busy = 0
        self._fetching = False
        self._waiting = 0
        self._lazy_fetch = False
        """The broker reports arrivals nobody fetches (``Broker.on_arrival``): a thread that takes
        what it fetched leaves no other thread fetching meanwhile (a chain's next step then wakes
        nobody but the thread that runs it); an arrival wakes an idle thread to fetch it."""
        self._arrived = False
        """(Lazy fetching) Deliveries arrived while a fetch was ending: the fetcher wakes another."""
        self._starved = 0
        """Task threads waiting because as many deliveries are held as allowed."""
        self._settler: Settler | None = None
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._started = threading.Event()
        self._opened = threading.Event()
        """Set once the broker and result store are open: from then on, a stop runs the normal shutdown."""
        self._startup_error: BaseException | None = None
        """What stopped ``run()`` before it consumed anything (re-raised by ``start()``)."""
        self._thread: threading.Thread | None = None
        self._progress: ProgressTracker | None = None
        self._executor: Executor | None = None
        self._live = 0
        """Task threads running and not abandoned."""
        self._abandoned = 0

    def __repr__(self) -> str:
        return f"<Worker queues={self.queues} concurrency={self.concurrency}>"

    # -- control ------------------------------------------------------------------------------

    def launch(self) -> None:
        """Run until stopped; in the main thread, SIGINT and SIGTERM stop it cleanly and a second
        signal exits at once (``foreground.run_in_foreground``). A broker or result backend that
        cannot be opened raises its error here."""
        run_in_foreground(self)

    @property
    def started(self) -> bool:
        """Whether the worker is consuming (past start-up)."""
        return self._started.is_set()

    def join(self) -> None:
        """Block until the worker has stopped (after ``start``)."""
        while not self._stopped.wait(1.0):
            pass
        if self._thread is not None:
            self._thread.join()

    def start(self) -> bool:
        """Run the worker in a background thread; returns True once it is consuming (or, stopped
        meanwhile, shutting down cleanly), False when ``stop()`` came while the broker or result
        store was still being opened (that thread is abandoned). Raises what kept them from opening."""
        thread = threading.Thread(target=self._run_guarded, name="machinery-worker", daemon=True)
        self._thread = thread
        thread.start()
        while not self._started.wait(0.05):
            if self._stopping.is_set() and not self._opened.is_set():
                return False
        error = self._startup_error
        if error is not None:
            thread.join()
            raise error
        return True

    def _run_guarded(self) -> None:
        try:
            self.run()
        except BaseException as exc:
            if self._started.is_set():
                raise
            self._startup_error = exc
            self._stopped.set()
            self._started.set()

    def stop(self, *, wait: bool = False, timeout: float | None = None) -> None:
        """Ask the worker to stop (safe from any thread and from signal handlers); with ``wait``,
        block until it has."""
        self._stopping.set()
        with self._work:
            self._work.notify_all()
        if self._started.is_set() and self._startup_error is None:
            threading.Thread(target=self._wake_broker, name="machinery-wake", daemon=True).start()
        if wait:
            self._stopped.wait(timeout)

    def _wake_broker(self) -> None:
        try:
            self.app.broker.wake()
        except Exception:
            log.exception("could not wake the broker")

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the loops ----------------------------------------------------------------------------

    def run(self) -> None:
        """Consume until ``stop()``; returns once running tasks finished, their acknowledgements
        were settled and every unstarted message was given back."""
        app = self.app
        broker = app.broker
        config = app.config
        backend = app.backend
        progress = None
        if backend is not None and config.track_started and config.track_started_after > 0:
            progress = ProgressTracker(backend, config.track_started_after)
            progress.start()
        self._progress = progress
        hooks = app.hooks
        watchdog = Watchdog(self._on_time_limit)
        executor = Executor(config, app.registry, broker, backend, progress, hooks=hooks, watchdog=watchdog)
        self._executor = executor
        settler = Settler(broker, backend, ack_batch=self._ack_batch, release=self._release, on_pause=self._paused,
                          stopping=self._stopping, lock=self._lock)
        self._settler = settler
        broker_name = describe_url(config.broker_url)
        heartbeat = Heartbeat(backend, broker=broker_name, queues=self.queues) if backend is not None else None
        try:
            broker.declare(self.queues)
            # Where the broker can choose by task (SQLite), take only the tasks registered here.
            broker.claim_only(app.registry.names(), unclaimed_after=config.unregistered_timeout)
            self._lazy_fetch = broker.on_arrival(self._on_arrival)
            if heartbeat is not None:
                heartbeat.start()  # the result store's first write: raises when it cannot be reached
        except BaseException:
            if progress is not None:
                progress.stop()
            raise
        self._opened.set()
        if self._stopping.is_set():  # stopped while the broker was being opened
            if progress is not None:
                progress.stop()
            if heartbeat is not None:
                heartbeat.stop()
            self._stopped.set()
            self._started.set()
            return
        info = WorkerInfo(worker_name(), tuple(self.queues), self.concurrency, broker, backend)
        settler.start()
        leases = LeaseRenewer(broker, config.visibility_timeout, self._held_now)
        leases.start()
        log.info(
            "worker consuming %s with %d threads (broker %s, results %s); tasks: %s",
            ", ".join(self.queues), self.concurrency, broker_name, describe_url(config.result_backend),
            ", ".join(app.registry.names()) or "(none)",
        )
        for _ in range(self.concurrency):
            self._start_runner(executor)
        hooks.worker_started(info)
        self._started.set()
        try:
            self._wait_runners()
        finally:
            self._stopping.set()
            with self._work:
                self._work.notify_all()
            self._wait_runners()
            watchdog.stop()
            settler.finish()
            self._give_back_unstarted()
            leases.stop()
            if progress is not None:
                progress.stop()
            if heartbeat is not None:
                heartbeat.stop()
            hooks.worker_stopped(info)
            log.info("worker stopped")
            self._stopped.set()

    def _start_runner(self, executor: Executor) -> None:
        with self._work:
            self._live += 1
            n = self._live + self._abandoned
        thread = threading.Thread(target=self._runner, args=(executor,), name=f"machinery-task-{n}", daemon=True)
        thread.start()

    def _runner(self, executor: Executor) -> None:
        try:
            self._run_tasks(executor)
        except Abandoned:
            return  # given up at its hard time limit: _on_time_limit did the accounting
        except BaseException:
            log.exception("a task thread failed")
        with self._work:
            self._live -= 1
            self._work.notify_all()

    def _wait_runners(self) -> None:
        """Wait until every task thread not abandoned has returned (they return once stopping).

        Tasks never run on the thread calling ``run``, so a KeyboardInterrupt that reaches it is a
        real Ctrl-C (an embedding without ``launch``'s handlers): the worker stops cleanly."""
        while True:
            try:
                with self._work:
                    while self._live:
                        self._work.wait(1.0)
                return
            except KeyboardInterrupt:
                log.info("interrupted: finishing running tasks, then stopping")
                self.stop()

    def _on_time_limit(self, watch: Watch) -> None:
        """(Watchdog) A task ran past its hard limit and was given up: hand its failure (record and
        error callbacks) to the settler, which stores, sends, then acks; replace its thread (or, in
        a supervised process, stop to be replaced)."""
        delivery, sig = cast("tuple[Delivery, Signature]", watch.context)
        executor = self._executor
        settler = self._settler
        assert executor is not None and settler is not None and watch.limits.hard is not None
        outcome = None
        try:
            started = time.perf_counter() - (time.monotonic() - watch.started)
            outcome = executor.time_limit_exceeded(delivery, sig, watch.limits.hard, started)
        except Exception:
            log.exception("task %s[%s]: could not settle its time-limit failure; it will run again", sig.name, sig.uuid)
            self._give_back(delivery)
        with self._work:
            self._busy -= 1
            self._abandoned += 1
            if outcome is None:
                self._held.pop(delivery.tag, None)
            replace = not self._stopping.is_set() and not self.exit_on_time_limit
            if not replace:
                self._live -= 1
                self._work.notify_all()
        if outcome is not None:
            try:
                settler.add(outcome)
            except Exception:
                log.exception("settling a delivery from %s failed; it comes back when its lease ends", delivery.queue)
        if replace:
            # The new thread is counted before the abandoned one stops counting: never below concurrency.
            self._start_runner(executor)
            with self._work:
                self._live -= 1
                self._work.notify_all()
        if self.exit_on_time_limit and not self._stopping.is_set():
            log.warning("a task thread was abandoned at its time limit: stopping this process to be replaced")
            self.exit_code = EXIT_REPLACE_ME
            self.stop()

    def _run_tasks(self, executor: Executor) -> None:
        """One task thread: take a fetched message (fetching when none waits), run it, hand its
        outcome to the settler, repeat."""
        progress = self._progress
        settler = self._settler
        assert settler is not None
        work = self._work
        while True:
            delivery = self._next()
            if delivery is None:
                return
            outcome = None
            alone = False
            try:
                outcome = executor.process(delivery)
            except Abandoned:
                raise  # its message, counts and replacement are _on_time_limit's
            except BaseException:
                log.exception("processing a delivery from %s failed; it runs again", delivery.queue)
                self._give_back(delivery)
            if progress is not None:
                progress.finish(delivery)
            with work:
                self._busy -= 1
                alone = not self._busy and not self._ready
                if outcome is None:
                    if self._starved:
                        work.notify(self._starved)
                    self._held.pop(delivery.tag, None)
                elif settler.owe_locked(outcome):  # nothing to store or send: acked in a batch
                    outcome = None
            if outcome is not None:
                try:
                    settler.add(outcome, alone=alone)
                except Exception:
                    log.exception("settling a delivery from %s failed; it comes back when its lease ends",
                                  delivery.queue)

    def _give_back(self, delivery: Delivery) -> None:
        try:
            self.app.broker.nack(delivery, delay=RETRY_DELAY)
        except Exception:
            log.exception("could not give back a delivery from %s; it comes back when its lease ends", delivery.queue)

    def _release(self, deliveries: Sequence[Delivery]) -> None:
        """(settler) These deliveries are settled: stop holding them."""
        with self._work:
            held = self._held
            for d in deliveries:
                held.pop(d.tag, None)
            if self._starved:
                self._work.notify(self._starved)

    def _paused(self, paused: bool) -> None:
        """(settler) The result store went away (pause) or came back (resume)."""
        if not paused:
            with self._work:
                self._work.notify_all()

    def _next(self) -> Delivery | None:
        """The next message to run (counted busy), or None once stopping."""
        work = self._work
        ready = self._ready
        stopping = self._stopping
        settler = self._settler
        assert settler is not None
        with work:
            while True:
                if stopping.is_set():
                    return None
                if settler.paused:  # the result store is unreachable: start and fetch nothing
                    work.wait(PAUSE_CHECK)
                    continue
                if ready:
                    self._busy += 1
                    return ready.popleft()
                settler.flush_locked()  # out of work: settle what is owed now
                if self._fetching:
                    self._waiting += 1
                    work.wait()
                    self._waiting -= 1
                    continue
                free = min(self._capacity - self._busy, self._hold_limit - len(self._held))
                if free <= 0:  # as many held as allowed (running or being settled): wait for a release
                    self._starved += 1
                    work.wait()
                    self._starved -= 1
                    continue
                self._fetching = True
                self._arrived = False
                work.release()
                try:
                    deliveries = self._fetch(free)
                finally:
                    work.acquire()
                    self._fetching = False
                if deliveries:
                    held = self._held
                    for d in deliveries:
                        held[d.tag] = d
                    ready.extend(deliveries)
                    if self._waiting:
                        # One waiting thread per message left over, and one to fetch next (with
                        # lazy fetching, only when something arrived meanwhile: the broker wakes
                        # one when something arrives later, through _on_arrival).
                        lazy = self._lazy_fetch and not self._arrived
                        n = len(deliveries) - 1 if lazy else len(deliveries)
                        if n:
                            work.notify(n)

    def _on_arrival(self) -> None:
        """(Broker thread) Deliveries arrived and no fetch waits for them: wake an idle thread to
        fetch them, or, when a fetch is just ending, have its thread wake one."""
        with self._work:
            if self._fetching:
                self._arrived = True
            elif self._waiting:
                self._work.notify()

    def _fetch(self, free: int) -> list[Delivery]:
        try:
            deliveries = self.app.broker.fetch(self.queues, free, FETCH_TIMEOUT)
        except Exception:
            log.exception("fetching from %s failed; trying again", ", ".join(self.queues))
            self._stopping.wait(1.0)
            return []
        progress = self._progress
        if progress is not None and deliveries:
            progress.received(deliveries)
        return deliveries

    def _give_back_unstarted(self) -> None:
        broker = self.app.broker
        progress = self._progress
        with self._work:
            unstarted = list(self._ready)
            self._ready.clear()
        for d in unstarted:
            try:
                if progress is not None:
                    progress.give_back(d)
                broker.nack(d)
            except Exception:
                log.exception("giving back a delivery from %s failed; it comes back when its lease ends", d.queue)
            with self._work:
                self._held.pop(d.tag, None)

    def _held_now(self) -> list[Delivery]:
        """(Lease thread) Every delivery held now."""
        with self._work:
            return list(self._held.values())
