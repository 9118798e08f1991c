"""How long tests wait, and waiting for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TIMEOUT", "eventually"]

#: Seconds a test waits at most for what should happen (a result, a worker's start or stop): far
#: above the usual, so that a loaded machine does not fail a test, and still bounded.
TIMEOUT = 30.0


def eventually(check: Callable[[], bool], timeout: float = TIMEOUT, interval: float = 0.02) -> bool:
    """True once ``check()`` is true, False if it is not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
