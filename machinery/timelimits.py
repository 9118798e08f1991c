"""Time limits of a task call: where they travel and which one applies.

A task gets default limits when it is registered (``register_task(..., time_limit=, soft_time_limit=)``
or ``@app.task(time_limit=...)``); a signature may override them. A signature carries its limits in
its ``Headers`` (``machinery_time_limit``, ``machinery_soft_time_limit``, seconds as JSON numbers), so
the wire format stays Go Machinery's: a Go worker ignores them, a Go producer may set them.

- ``soft_time_limit``: ``SoftTimeLimitExceeded`` is raised inside the task (which may catch it).
- ``time_limit`` (hard): the task is given up: recorded as a ``FAILURE`` (``TimeLimitExceeded``), its
  error callbacks sent, its message acknowledged; its thread is abandoned (or its process replaced).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["NO_LIMITS", "SOFT_TIME_LIMIT_HEADER", "TIME_LIMIT_HEADER", "TimeLimits", "check_limit", "limit_headers"]

#: Signature header: seconds a task may run before it is given up.
TIME_LIMIT_HEADER = "machinery_time_limit"
#: Signature header: seconds a task may run before ``SoftTimeLimitExceeded`` is raised in it.
SOFT_TIME_LIMIT_HEADER = "machinery_soft_time_limit"


def check_limit(value: object, what: str) -> float | None:
    """``value`` as a limit in seconds (None: no limit); ``ValueError`` unless a finite number > 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a finite number of seconds > 0 or None, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class TimeLimits:
    """Seconds a task call may run: ``soft`` before ``SoftTimeLimitExceeded`` is raised in it, ``hard``
    before it is given up. None: no limit."""

    soft: float | None = None
    hard: float | None = None

    def __post_init__(self) -> None:
        check_limit(self.soft, "soft_time_limit")
        check_limit(self.hard, "time_limit")

    @property
    def any(self) -> bool:
        return self.soft is not None or self.hard is not None

    def overridden_by(self, headers: Mapping[str, object]) -> TimeLimits:
        """These limits with those a signature's ``headers`` set in their place. A header that is not
        a positive number is ignored (the message still runs, under the task's own limits)."""
        soft, hard = self.soft, self.hard
        if SOFT_TIME_LIMIT_HEADER in headers:
            try:
                soft = check_limit(headers[SOFT_TIME_LIMIT_HEADER], SOFT_TIME_LIMIT_HEADER)
            except ValueError:
                pass
        if TIME_LIMIT_HEADER in headers:
            try:
                hard = check_limit(headers[TIME_LIMIT_HEADER], TIME_LIMIT_HEADER)
            except ValueError:
                pass
        if soft is self.soft and hard is self.hard:
            return self
        return TimeLimits(soft, hard)


NO_LIMITS = TimeLimits()


def limit_headers(time_limit: float | None, soft_time_limit: float | None) -> dict[str, float]:
    """The signature headers that set these limits (checked)."""
    out: dict[str, float] = {}
    hard = check_limit(time_limit, "time_limit")
    soft = check_limit(soft_time_limit, "soft_time_limit")
    if hard is not None:
        out[TIME_LIMIT_HEADER] = hard
    if soft is not None:
        out[SOFT_TIME_LIMIT_HEADER] = soft
    return out
