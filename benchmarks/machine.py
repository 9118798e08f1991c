"""What every benchmark prints about the machine it ran on, so figures can be compared, and what
the benchmarks that start worker processes share: the child's environment and waiting for a count.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["ROOT", "child_env", "cpu_model", "describe", "load", "wait_until"]

#: The repository root: worker processes run there, with it on ``PYTHONPATH``.
ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("?" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def describe(*extras: str) -> str:
    """CPU, cores and Python, then ``extras`` (library versions, codec in use...)."""
    parts = [f"CPU {cpu_model()}", f"{os.cpu_count()} cores", f"Python {platform.python_version()}", *extras]
    return ", ".join(parts)


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a worker process: this one without ``MACHINERY_*``/``BENCH_*`` settings
    (except ``MACHINERY_NO_EXTENSIONS``), the repository on ``PYTHONPATH``, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MACHINERY_", "BENCH_"))}
    if "MACHINERY_NO_EXTENSIONS" in os.environ:
        env["MACHINERY_NO_EXTENSIONS"] = os.environ["MACHINERY_NO_EXTENSIONS"]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def wait_until(cond: threading.Condition, done: Callable[[], bool], timeout: float) -> bool:
    """Wait on ``cond`` (notified on every change) until ``done()``; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with cond:
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            cond.wait(left)
    return True
