"""Rate limits per task name: ``@app.task(rate_limit="100/s")`` (also ``"10/m"``, ``"1000/h"``) or
``app.register_task(name, task, rate_limit=...)``.

A ``RateLimiter`` hook takes a token for each run of a limited task in ``before_run``. The bucket is
in the result store's control store where it has one (SQLite, Redis: one bucket for every worker
using that store, taken atomically), else in this process (one bucket for the worker's threads). A
bucket holds at most ``RateLimit.burst`` tokens (1 by default: runs are spaced, never early) and
refills at the limit. When no token is there, the task thread waits for one if it comes within
``HOLD`` seconds; otherwise the message goes back to the broker with a delay (``Delay``) until about
when the next token is due, spread by up to one token's interval so that the messages given back do
not all return at once. Nothing is lost and nothing runs early.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from machinery.backends.base import ResultBackend
from machinery.backends.control import ControlStore, control_store, refill
from machinery.errors import MachineryError
from machinery.hooks import Delay, Hook, RunDecision, TaskCall

__all__ = ["HOLD", "RateLimit", "RateLimiter", "parse_rate_limit"]

log = logging.getLogger("machinery.rate_limits")

#: Seconds a task thread may wait for a token before giving the message back with a delay.
HOLD = 0.25

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([smh])\s*$")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``per_second`` runs a second on average, ``burst`` at once."""

    per_second: float
    text: str
    burst: float = 1.0


def parse_rate_limit(text: str) -> RateLimit:
    """``"100/s"``, ``"10/m"`` or ``"1000/h"`` as a ``RateLimit`` (``ValueError`` otherwise)."""
    match = _PATTERN.match(text) if isinstance(text, str) else None
    if match is None or float(match[1]) <= 0:
        raise ValueError(f"a rate limit is N/s, N/m or N/h with N > 0 (like '100/s'), got {text!r}")
    return RateLimit(float(match[1]) / _UNITS[match[2]], text.strip())


class _LocalBucket:
    """A token bucket shared by this process's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: tuple[float, float] | None = None

    def take(self, limit: RateLimit) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, at = self._state or (limit.burst, now)
            tokens, wait = refill(tokens, at, now, limit.per_second, limit.burst)
            self._state = (tokens, now)
            return wait


class RateLimiter(Hook):
    """Holds or delays runs of rate-limited tasks; ``App`` adds one when a task gets a limit."""

    def __init__(self, backend: Callable[[], ResultBackend | None]) -> None:
        self._backend = backend
        self._limits: dict[str, RateLimit] = {}
        self._local: dict[str, _LocalBucket] = {}
        self._control: ControlStore | None = None
        self._resolved = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RateLimiter {', '.join(f'{n}={lim.text}' for n, lim in self._limits.items())}>"

    @property
    def limits(self) -> dict[str, RateLimit]:
        """Task name -> its limit."""
        return dict(self._limits)

    def limit(self, name: str, limit: RateLimit | None) -> None:
        """Limit task ``name`` (None: no limit)."""
        with self._lock:
            limits = dict(self._limits)
            if limit is None:
                limits.pop(name, None)
            else:
                limits[name] = limit
                self._local.setdefault(name, _LocalBucket())
            self._limits = limits

    def _store(self) -> ControlStore | None:
        if not self._resolved:
            self._control = control_store(self._backend())
            self._resolved = True
        return self._control

    def _take(self, name: str, limit: RateLimit) -> float:
        control = self._store()
        if control is not None:
            try:
                return control.take_token(f"rate:{name}", limit.per_second, limit.burst)
            except MachineryError as exc:
                log.warning("rate limit of %s: the shared bucket cannot be reached (%s); using this "
                            "worker's own", name, exc)
        return self._local[name].take(limit)

    def before_run(self, call: TaskCall) -> RunDecision | None:
        name = call.signature.name
        limit = self._limits.get(name)
        if limit is None:
            return None
        give_up = time.monotonic() + HOLD
        while True:
            wait = self._take(name, limit)
            if wait <= 0.0:
                return None
            if time.monotonic() + wait > give_up:
                return Delay(wait + random.uniform(0.0, 1.0 / limit.per_second))
            time.sleep(wait)
