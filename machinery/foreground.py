"""Running a worker in the foreground of its process: SIGINT and SIGTERM stop it cleanly (no new
messages, running tasks finish, fetched but unstarted messages go back); a second signal exits the
process at once (held messages return when their leases end). Off the main thread, where signal
handlers cannot be installed, the worker simply runs."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Protocol

__all__ = ["Stoppable", "run_in_foreground"]

log = logging.getLogger("machinery.worker")


class Stoppable(Protocol):
    """What ``run_in_foreground`` needs of a worker (``Worker`` has it)."""

    @property
    def started(self) -> bool:
        """Whether it is consuming (past start-up)."""
        ...

    def run(self) -> None: ...

    def start(self) -> bool: ...

    def stop(self, *, wait: bool = False, timeout: float | None = None) -> None: ...

    def join(self) -> None:
        """Block until it has stopped."""
        ...


def run_in_foreground(worker: Stoppable) -> None:
    """Run ``worker`` until it stops, with SIGINT/SIGTERM handlers in the main thread (the previous
    handlers are put back afterwards). A signal during start-up stops it before it consumes; a
    broker or result backend that cannot be opened raises its error here."""
    if threading.current_thread() is not threading.main_thread():
        worker.run()
        return
    received = [0]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received[0] += 1
        name = signal.Signals(signum).name
        if received[0] > 1:
            log.warning("second signal %s: exiting at once", name)
            os._exit(128 + signum)
        if worker.started:
            log.info("signal %s: finishing running tasks, then stopping", name)
        else:
            log.info("signal %s during start-up: stopping before consuming", name)
        worker.stop()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        if worker.start():
            worker.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
