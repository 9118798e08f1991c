"""Where events travel: the ``EventChannel`` protocol and the in-process channel (the SQLite and
RabbitMQ ones are beside it; ``opening.open_channel`` picks the one for a config's broker).

Events are best-effort and transient: a channel keeps them a short while (SQLite: an hour; RabbitMQ:
only while a subscriber's queue exists), and a subscriber sees those published after it subscribed,
plus, where the channel keeps them, those of the last ``history`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from machinery.events.model import Event, encode_event
from machinery.schemes import SharedByName

__all__ = ["KEEP_SECONDS", "EventChannel", "EventSubscription", "MemoryEvents"]

#: Seconds a channel that stores events (SQLite, in-process) keeps them.
KEEP_SECONDS = 3600.0
#: Most events the in-process channel keeps.
_MEMORY_KEEP = 100_000


class EventSubscription(Protocol):
    """A subscriber's view of a channel: the events published since it subscribed, as bytes."""

    def read(self, timeout: float) -> list[bytes]:
        """The next events, waiting up to ``timeout`` seconds for the first; [] if none came."""
        ...

    def close(self) -> None: ...


class EventChannel(Protocol):
    """Publishes events and hands out subscriptions. ``publish`` may be called from one thread at
    a time; each subscription is read by one thread."""

    def publish(self, events: Sequence[Event]) -> None:
        """Publish ``events`` (``BrokerError`` when the broker cannot take them)."""
        ...

    def subscribe(self, history: float = 0.0) -> EventSubscription:
        """Events from now on, and those of the last ``history`` seconds where the channel keeps them."""
        ...

    def close(self) -> None: ...


class _MemoryLog:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.events: deque[tuple[int, float, bytes]] = deque(maxlen=_MEMORY_KEEP)
        self.last = 0


_LOGS: SharedByName[_MemoryLog] = SharedByName()


class _MemorySubscription:
    def __init__(self, log: _MemoryLog, after: int) -> None:
        self._log = log
        self._after = after

    def read(self, timeout: float) -> list[bytes]:
        log = self._log
        deadline = time.monotonic() + timeout
        with log.cond:
            while log.last <= self._after:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                log.cond.wait(left)
            out = [body for seq, _, body in log.events if seq > self._after]
            self._after = log.last
            return out

    def close(self) -> None:
        pass


class MemoryEvents:
    """Events within one process, shared by name (the channel of ``memory://<name>`` brokers)."""

    def __init__(self, name: str) -> None:
        self._log = _LOGS.get(name, _MemoryLog)

    def publish(self, events: Sequence[Event]) -> None:
        log = self._log
        now = time.time()
        with log.cond:
            for event in events:
                log.last += 1
                log.events.append((log.last, now, encode_event(event)))
            while log.events and log.events[0][1] < now - KEEP_SECONDS:
                log.events.popleft()
            log.cond.notify_all()

    def subscribe(self, history: float = 0.0) -> EventSubscription:
        log = self._log
        with log.cond:
            after = log.last
            if history > 0:
                since = time.time() - history
                kept = [seq for seq, at, _ in log.events if at >= since]
                after = kept[0] - 1 if kept else log.last
        return _MemorySubscription(log, after)

    def close(self) -> None:
        pass
