"""How a benchmark learns that tasks ran, in any worker process of any system alike: every
benchmark task calls ``done()``, which writes the time of its completion into a FIFO at its
process's first completion, at the ``BENCH_EXPECT``-th and at each one after it (so a throughput run
is timed without a write per task, and latency samples and chains are timed one by one);
``SideChannel`` reads the FIFO and keeps those times. The time is ``time.perf_counter()`` taken in
the worker: on Linux that is ``CLOCK_MONOTONIC``, one clock for every process, so a figure does not
include the time the benchmark's own process takes to notice the write. Elsewhere the time of
arrival is kept instead.
"""

from __future__ import annotations

import itertools
import os
import struct
import sys
import threading
import time
from pathlib import Path

from benchmarks.machine import wait_until

__all__ = ["EXPECT_ENV", "FIFO_ENV", "SHARED_CLOCK", "SideChannel", "done"]

#: The FIFO's path, in a worker process's environment.
FIFO_ENV = "BENCH_FIFO"
#: The completion at which a worker process starts writing one byte per completion.
EXPECT_ENV = "BENCH_EXPECT"

#: Whether ``time.perf_counter`` is one clock for every process here (Linux: CLOCK_MONOTONIC).
SHARED_CLOCK = sys.platform.startswith("linux") and "CLOCK_MONOTONIC" in time.get_clock_info(
    "perf_counter").implementation
_RECORD = struct.Struct("=d")

_fifo: list[int] = []
_expect: list[int] = []
_completions = itertools.count(1)


def done() -> None:
    """Called by every benchmark task: one byte into the FIFO named by ``BENCH_FIFO`` at the first
    completion, at the ``BENCH_EXPECT``-th and at each one after it."""
    if not _fifo:
        path = os.environ.get(FIFO_ENV)
        if not path:
            return
        _expect.append(int(os.environ.get(EXPECT_ENV, "0")))
        _fifo.append(os.open(path, os.O_WRONLY))
    n = next(_completions)  # atomic under the GIL, whichever thread runs the task
    if 1 < n < _expect[0]:
        return
    os.write(_fifo[0], _RECORD.pack(time.perf_counter()))  # 8 bytes: one atomic write


class SideChannel:
    """Counts completions written to a FIFO by any process, with the time of each."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "done.fifo"
        os.mkfifo(self.path)
        self._fd = os.open(self.path, os.O_RDWR)  # never sees EOF while writers come and go
        self.times: list[float] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        pending = b""
        size = _RECORD.size
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                return
            now = time.perf_counter()
            pending += chunk
            whole = len(pending) - len(pending) % size
            stamps = [t for (t,) in _RECORD.iter_unpack(pending[:whole])] if SHARED_CLOCK else [now] * (whole // size)
            pending = pending[whole:]
            with self._cond:
                self.times.extend(stamps)
                self._cond.notify_all()

    def env(self, expect: int) -> dict[str, str]:
        """The environment that makes a worker process's tasks report here: their first completion
        and their ``expect``-th and later ones (see ``done``)."""
        return {FIFO_ENV: str(self.path), EXPECT_ENV: str(expect)}

    def wait_for(self, n: int, timeout: float) -> bool:
        return wait_until(self._cond, lambda: len(self.times) >= n, timeout)

    def reset(self) -> None:
        with self._cond:
            self.times.clear()
