"""The Worker: fetches messages from its queues and runs them on a fixed pool of threads.

One thread fetches (only as many messages as there are free slots, plus a small prefetch), N
threads run tasks through an ``Executor``, and one thread renews the leases of everything held.
``launch()`` blocks and stops cleanly on SIGINT/SIGTERM; ``start()``/``stop()`` embed it.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from machinery.brokers.base import Delivery
from machinery.config import masked_url
from machinery.execution import Executor
from machinery.progress import ProgressTracker

if TYPE_CHECKING:
    from machinery.app import App

__all__ = ["Worker"]

log = logging.getLogger("machinery.worker")

#: Seconds one fetch waits for a message before looking at the stop flag again.
FETCH_TIMEOUT = 1.0


class Worker:
    """Consumes ``queues`` (the app's default queue when none are given) and runs the app's
    registered tasks on ``concurrency`` threads (``config.concurrency`` by default)."""

    def __init__(
        self,
        app: App,
        *,
        concurrency: int | None = None,
        queues: Sequence[str] | None = None,
        prefetch: int | None = None,
    ) -> None:
        config = app.config
        self.app = app
        self.concurrency = concurrency if concurrency is not None else config.concurrency
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        self.queues = list(queues) if queues else [config.default_queue]
        self.prefetch = prefetch if prefetch is not None else max(1, config.prefetch_count)
        self._capacity = self.concurrency + self.prefetch
        self._inbox: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()
        self._held: dict[int, Delivery] = {}
        self._slots = threading.Condition(threading.Lock())
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._started = threading.Event()
        self._runners_done = threading.Event()
        self._signals = 0
        self._thread: threading.Thread | None = None
        self._progress: ProgressTracker | None = None

    def __repr__(self) -> str:
        return f"<Worker queues={self.queues} concurrency={self.concurrency}>"

    # -- control ------------------------------------------------------------------------------

    def launch(self) -> None:
        """Run until stopped (the seed's ``Launch``). In the main thread, SIGINT and SIGTERM stop
        it cleanly: no new messages, running tasks finish, fetched but unstarted messages go back;
        a second signal exits the process at once (held messages return when their leases end)."""
        if threading.current_thread() is not threading.main_thread():
            self.run()
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, self._on_signal)
        try:
            self.start()
            while not self._stopped.wait(1.0):
                pass
            if self._thread is not None:
                self._thread.join()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal %s: exiting at once", signal.Signals(signum).name)
            os._exit(128 + signum)
        log.info("signal %s: finishing running tasks, then stopping", signal.Signals(signum).name)
        self.stop()

    def start(self) -> threading.Thread:
        """Run the worker in a background thread; returns once it is consuming."""
        thread = threading.Thread(target=self.run, name="machinery-worker", daemon=True)
        self._thread = thread
        thread.start()
        self._started.wait()
        return thread

    def stop(self, *, wait: bool = False, timeout: float | None = None) -> None:
        """Ask the worker to stop (safe from any thread and from signal handlers); with ``wait``,
        block until it has."""
        self._stopping.set()
        with self._slots:
            self._slots.notify_all()
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
        """Consume until ``stop()``; returns once running tasks finished and every unstarted
        message was given back."""
        app = self.app
        broker = app.broker
        config = app.config
        backend = app.backend
        progress = None
        if backend is not None and config.track_started and config.track_started_after > 0:
            progress = ProgressTracker(backend, config.track_started_after)
            progress.start()
        self._progress = progress
        executor = Executor(config, app.registry, broker, backend, progress)
        broker.declare(self.queues)
        runners = [
            threading.Thread(target=self._run_tasks, args=(executor,), name=f"machinery-task-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for t in runners:
            t.start()
        leases = threading.Thread(target=self._renew_leases, name="machinery-leases", daemon=True)
        leases.start()
        log.info(
            "worker consuming %s with %d threads (broker %s); tasks: %s",
            ", ".join(self.queues), self.concurrency, masked_url(app.config.broker_url),
            ", ".join(app.registry.names()) or "(none)",
        )
        self._started.set()
        try:
            self._fetch_loop()
        finally:
            for _ in runners:
                self._inbox.put(None)
            for t in runners:
                t.join()
            self._runners_done.set()
            leases.join()
            if progress is not None:
                progress.stop()
            log.info("worker stopped")
            self._stopped.set()

    def _fetch_loop(self) -> None:
        broker = self.app.broker
        low_water = self.concurrency
        while not self._stopping.is_set():
            with self._slots:
                # Refill in batches: wait until the prefetched messages are nearly used up.
                while len(self._held) > low_water and not self._stopping.is_set():
                    self._slots.wait()
                free = self._capacity - len(self._held)
            if self._stopping.is_set():
                return
            try:
                deliveries = broker.fetch(self.queues, free, FETCH_TIMEOUT)
            except Exception:
                log.exception("fetching from %s failed; trying again", ", ".join(self.queues))
                self._stopping.wait(1.0)
                continue
            if not deliveries:
                continue
            with self._slots:
                for d in deliveries:
                    self._held[d.tag] = d
            progress = self._progress
            for d in deliveries:
                if progress is not None:
                    progress.received(d)
                self._inbox.put(d)

    def _release(self, delivery: Delivery) -> None:
        with self._slots:
            held = self._held
            held.pop(delivery.tag, None)
            if len(held) == self.concurrency:  # just reached the refill mark: wake the fetcher
                self._slots.notify()

    def _run_tasks(self, executor: Executor) -> None:
        broker = executor.broker
        while True:
            delivery = self._inbox.get()
            if delivery is None:
                return
            try:
                if self._stopping.is_set():
                    if self._progress is not None:
                        self._progress.give_back(delivery)
                    broker.nack(delivery)
                else:
                    executor.handle(delivery)
            except Exception:
                log.exception("settling a delivery from %s failed; it comes back when its lease ends", delivery.queue)
            finally:
                if self._progress is not None:
                    self._progress.finish(delivery)
                self._release(delivery)

    def _renew_leases(self) -> None:
        broker = self.app.broker
        interval = max(self.app.config.visibility_timeout / 3.0, 0.05)
        while not self._runners_done.wait(interval):
            with self._slots:
                held = list(self._held.values())
            if held:
                try:
                    broker.extend(held)
                except Exception:
                    log.exception("renewing %d leases failed", len(held))
