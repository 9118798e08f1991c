"""What workers and schedulers share through the result store besides results: revocations, rate
limit buckets and leases. A result backend that implements ``ControlStore`` offers them to every
worker and scheduler using it (SQLite: tables in its file; Redis: keys under its prefix; memory: one
process).

- Revocations: task UUIDs that must not run, each with a reason, kept until they expire.
- Token buckets: ``take_token(key, rate, capacity)`` takes one token from the bucket ``key``
  (refilled at ``rate`` tokens a second up to ``capacity``) atomically for every client of the store.
- Leases: ``claim(key, owner, ttl)`` makes ``owner`` the holder of ``key`` until ``ttl`` seconds pass
  (then another owner may take it over) unless it is done; ``complete`` marks it done for ``keep``
  seconds, so nobody claims it again meanwhile.
"""

from __future__ import annotations

import enum
import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Claim", "ControlStore", "MemoryControl", "control_store", "refill"]


class Claim(enum.Enum):
    """What ``claim`` found."""

    MINE = "mine"
    """The caller holds the lease now (it was free, expired, or the caller's already)."""
    HELD = "held"
    """Another owner holds a lease that has not expired."""
    DONE = "done"
    """Its work was completed (by whoever held it)."""


def refill(tokens: float, updated_at: float, now: float, rate: float, capacity: float) -> tuple[float, float]:
    """Take one token from a bucket holding ``tokens`` at ``updated_at``, refilled at ``rate`` a
    second up to ``capacity``: the tokens left and 0.0, or the tokens now and the seconds until one
    is there (then nothing is taken)."""
    tokens = min(capacity, tokens + max(now - updated_at, 0.0) * rate)
    if tokens >= 1.0:
        return tokens - 1.0, 0.0
    return tokens, (1.0 - tokens) / rate


@runtime_checkable
class ControlStore(Protocol):
    """Revocations, token buckets and leases shared by every client of one store."""

    def revoke(self, task_uuid: str, reason: str, expires_in: float) -> None:
        """Record that ``task_uuid`` must not run, for ``expires_in`` seconds."""
        ...

    def revocations(self) -> dict[str, str]:
        """Every revocation not expired: task UUID -> reason."""
        ...

    def take_token(self, key: str, rate: float, capacity: float) -> float:
        """Take a token from bucket ``key``: 0.0 when one was taken, else the seconds until one
        will be there (nothing taken). A new bucket starts full."""
        ...

    def claim(self, key: str, owner: str, ttl: float) -> Claim:
        """Hold lease ``key`` as ``owner`` for ``ttl`` seconds, if it is free, expired or ours."""
        ...

    def complete(self, key: str, owner: str, keep: float) -> None:
        """Mark lease ``key`` done (if ``owner`` holds it) and remember that for ``keep`` seconds."""
        ...


def control_store(backend: object) -> ControlStore | None:
    """The ``ControlStore`` of a result backend (its ``control``), or None when it has none."""
    control = getattr(backend, "control", None)
    return control if isinstance(control, ControlStore) else None


class MemoryControl:
    """``ControlStore`` in this process's memory (the memory backend's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revoked: dict[str, tuple[str, float]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._leases: dict[str, tuple[str, bool, float]] = {}

    def revoke(self, task_uuid: str, reason: str, expires_in: float) -> None:
        with self._lock:
            self._revoked[task_uuid] = (reason, time.time() + expires_in)

    def revocations(self) -> dict[str, str]:
        now = time.time()
        with self._lock:
            self._revoked = {k: v for k, v in self._revoked.items() if v[1] > now}
            return {k: v[0] for k, v in self._revoked.items()}

    def take_token(self, key: str, rate: float, capacity: float) -> float:
        now = time.time()
        with self._lock:
            tokens, wait = refill(*self._buckets.get(key, (capacity, now)), now, rate, capacity)
            self._buckets[key] = (tokens, now)
            return wait

    def claim(self, key: str, owner: str, ttl: float) -> Claim:
        now = time.time()
        with self._lock:
            held = self._leases.get(key)
            if held is not None and held[2] > now:
                if held[1]:
                    return Claim.DONE
                if held[0] != owner:
                    return Claim.HELD
            self._leases[key] = (owner, False, now + ttl)
            return Claim.MINE

    def complete(self, key: str, owner: str, keep: float) -> None:
        with self._lock:
            held = self._leases.get(key)
            if held is not None and held[0] == owner:
                self._leases[key] = (owner, True, time.time() + keep)
