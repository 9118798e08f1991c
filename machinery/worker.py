"""The Worker: fetches messages from its queues and runs them on a fixed pool of threads.

There is no fetching thread to hand messages over: a task thread that finds no fetched message
waiting fetches itself (one at a time; as many as there are free slots, plus a small prefetch) and
leaves the rest for the others. Acknowledgements are settled in batches by one settler thread (at
most ``ACK_DELAY`` seconds or ``ACK_BATCH`` deliveries after the task finished, and at once when
the threads run out of work), and one thread renews the leases of everything held.
``launch()`` blocks and stops cleanly on SIGINT/SIGTERM; ``start()``/``stop()`` embed it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from types import FrameType
from typing import Protocol, cast

from machinery.backends.base import ResultBackend
from machinery.brokers.base import Broker, Delivery
from machinery.config import Config
from machinery.execution import Executor
from machinery.heartbeat import Heartbeat
from machinery.locations import describe_url
from machinery.progress import ProgressTracker
from machinery.registry import Registry
from machinery.signature import Signature
from machinery.supervisor import EXIT_REPLACE_ME
from machinery.watchdog import Abandoned, Watch, Watchdog

__all__ = ["Worker", "WorkerApp"]

log = logging.getLogger("machinery.worker")

#: Seconds one fetch waits for a message before looking at the stop flag again.
FETCH_TIMEOUT = 1.0
#: Most finished deliveries the settler gathers before acknowledging them together.
ACK_BATCH = 32
#: Longest the settler waits (seconds) for more finished deliveries while task threads are busy.
ACK_DELAY = 0.002


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
        self._ack_batch = max(1, min(ACK_BATCH, self.prefetch))
        lock = threading.Lock()
        self._work = threading.Condition(lock)
        """Guards everything below; task threads wait on it for fetched messages."""
        self._settle = threading.Condition(lock)
        """The settler waits on it for finished deliveries."""
        self._ready: deque[Delivery] = deque()
        """Fetched and not started."""
        self._held: dict[int, Delivery] = {}
        """Every delivery not yet settled (its lease is renewed)."""
        self._owed: list[Delivery] = []
        """Finished and stored, waiting for the settler's ack."""
        self._busy = 0
        self._fetching = False
        self._waiting = 0
        self._flush = False
        self._tasks_done = False
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._started = threading.Event()
        self._runners_done = threading.Event()
        self._signals = 0
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
        """Run until stopped. In the main thread, SIGINT and SIGTERM stop
        it cleanly: no new messages, running tasks finish, fetched but unstarted messages go back;
        a second signal exits the process at once (held messages return when their leases end).
        A signal during start-up (while the broker is being opened) stops it before it consumes;
        a broker or result backend that cannot be opened raises its error here."""
        if threading.current_thread() is not threading.main_thread():
            self.run()
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, self._on_signal)
        try:
            if not self.start():
                return
            while not self._stopped.wait(1.0):
                pass
            if self._thread is not None:
                self._thread.join()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals > 1:
            log.warning("second signal %s: exiting at once", name)
            os._exit(128 + signum)
        if self._started.is_set():
            log.info("signal %s: finishing running tasks, then stopping", name)
        else:
            log.info("signal %s during start-up: stopping before consuming", name)
        self.stop()

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
        watchdog = Watchdog(self._on_time_limit)
        executor = Executor(config, app.registry, broker, backend, progress, watchdog=watchdog)
        self._executor = executor
        broker_name = describe_url(config.broker_url)
        heartbeat = Heartbeat(backend, broker=broker_name, queues=self.queues) if backend is not None else None
        try:
            broker.declare(self.queues)
            # Where the broker can choose by task (SQLite), take only the tasks registered here.
            broker.claim_only(app.registry.names(), unclaimed_after=config.unregistered_timeout)
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
        settler = threading.Thread(target=self._settle_loop, name="machinery-settler", daemon=True)
        settler.start()
        leases = threading.Thread(target=self._renew_leases, name="machinery-leases", daemon=True)
        leases.start()
        log.info(
            "worker consuming %s with %d threads (broker %s, results %s); tasks: %s",
            ", ".join(self.queues), self.concurrency, broker_name, describe_url(config.result_backend),
            ", ".join(app.registry.names()) or "(none)",
        )
        for _ in range(self.concurrency):
            self._start_runner(executor)
        self._started.set()
        try:
            self._wait_runners()
        finally:
            self._stopping.set()
            with self._work:
                self._work.notify_all()
            self._wait_runners()
            watchdog.stop()
            with self._work:
                self._tasks_done = True
                self._settle.notify()
            settler.join()
            self._give_back_unstarted()
            self._runners_done.set()
            leases.join()
            if progress is not None:
                progress.stop()
            if heartbeat is not None:
                heartbeat.stop()
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
        """(Watchdog) A task ran past its hard limit and was given up: record its failure, ack its
        message, and replace its thread (or, in a supervised process, stop to be replaced)."""
        delivery, sig = cast("tuple[Delivery, Signature]", watch.context)
        executor = self._executor
        assert executor is not None and watch.limits.hard is not None
        owed = False
        try:
            started = time.perf_counter() - (time.monotonic() - watch.started)
            executor.time_limit_exceeded(delivery, sig, watch.limits.hard, started)
            owed = True
        except Exception:
            log.exception("task %s[%s]: could not store its time-limit failure; it will run again", sig.name, sig.uuid)
            try:
                self.app.broker.nack(delivery, delay=1.0)
            except Exception:
                log.exception("could not give back a delivery from %s; its lease will expire", delivery.queue)
        with self._work:
            self._busy -= 1
            self._abandoned += 1
            if owed:
                self._owed.append(delivery)
                self._settle.notify()
            else:
                self._held.pop(delivery.tag, None)
            replace = not self._stopping.is_set() and not self.exit_on_time_limit
            if not replace:
                self._live -= 1
                self._work.notify_all()
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
        """One task thread: take a fetched message (fetching when none waits), run it, repeat."""
        progress = self._progress
        work = self._work
        while True:
            delivery = self._next()
            if delivery is None:
                return
            owed = False
            try:
                owed = executor.process(delivery)
            except Abandoned:
                raise  # its message, counts and replacement are _on_time_limit's
            except BaseException:
                log.exception("settling a delivery from %s failed; it comes back when its lease ends", delivery.queue)
            if progress is not None:
                progress.finish(delivery)
            with work:
                self._busy -= 1
                if owed:
                    pending = self._owed
                    pending.append(delivery)
                    if len(pending) == 1 or len(pending) >= self._ack_batch:
                        self._settle.notify()
                else:
                    self._held.pop(delivery.tag, None)

    def _next(self) -> Delivery | None:
        """The next message to run (counted busy), or None once stopping."""
        work = self._work
        ready = self._ready
        stopping = self._stopping
        with work:
            while True:
                if stopping.is_set():
                    return None
                if ready:
                    self._busy += 1
                    return ready.popleft()
                if self._owed and not self._flush:  # out of work: settle what is owed now
                    self._flush = True
                    self._settle.notify()
                if self._fetching:
                    self._waiting += 1
                    work.wait()
                    self._waiting -= 1
                    continue
                self._fetching = True
                free = self._capacity - self._busy
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
                        # One waiting thread per message left over, and one to fetch next.
                        work.notify(len(deliveries))

    def _fetch(self, free: int) -> list[Delivery]:
        try:
            deliveries = self.app.broker.fetch(self.queues, free, FETCH_TIMEOUT)
        except Exception:
            log.exception("fetching from %s failed; trying again", ", ".join(self.queues))
            self._stopping.wait(1.0)
            return []
        progress = self._progress
        if progress is not None:
            for d in deliveries:
                progress.received(d)
        return deliveries

    def _settle_loop(self) -> None:
        """Acknowledge finished deliveries in batches: as soon as ``ACK_BATCH`` gathered or the
        task threads ran out of work, else ``ACK_DELAY`` after the first one finished."""
        broker = self.app.broker
        settle = self._settle
        while True:
            with settle:
                while not self._owed and not self._tasks_done:
                    settle.wait()
                if not self._owed:
                    return
                deadline = time.monotonic() + ACK_DELAY
                while len(self._owed) < self._ack_batch and not self._flush and not self._tasks_done:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    settle.wait(left)
                batch, self._owed = self._owed, []
                self._flush = False
            try:
                broker.ack_many(batch)
            except Exception:
                log.exception("acknowledging %d deliveries failed; they come back when their leases end", len(batch))
            with settle:
                held = self._held
                for d in batch:
                    held.pop(d.tag, None)

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

    def _renew_leases(self) -> None:
        broker = self.app.broker
        interval = max(self.app.config.visibility_timeout / 3.0, 0.05)
        while not self._runners_done.wait(interval):
            with self._work:
                held = list(self._held.values())
            if held:
                try:
                    broker.extend(held)
                except Exception:
                    log.exception("renewing %d leases failed", len(held))
