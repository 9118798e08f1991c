"""The in-memory broker: one process, thread-safe, with the same delivery rules as the others
(priorities, delays, leases that expire, dead letters). For tests and embedding."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from machinery.brokers.base import Broker, Delivery, OutgoingMessage, QueueDepth, dead_letter_queue
from machinery.brokers.dead_letters import DeadMessage, dead_letter_headers, live_headers
from machinery.config import Config
from machinery.schemes import SharedByName

__all__ = ["MemoryBroker"]

_SHARED: SharedByName[MemoryBroker] = SharedByName()


@dataclass(slots=True)
class _Message:
    queue: str
    body: bytes
    priority: int
    headers: dict[str, str]
    seq: int
    delivery_count: int = 0
    lease_until: float = 0.0


@dataclass(slots=True)
class _Queue:
    ready: list[tuple[int, int, _Message]] = field(default_factory=list)
    """Heap of (-priority, seq, message)."""
    delayed: list[tuple[float, int, _Message]] = field(default_factory=list)
    """Heap of (deliverable-at, seq, message)."""


class MemoryBroker(Broker):
    """A Broker holding messages in this process's memory.

    ``MemoryBroker.named(name)`` gives one shared instance per name, so a producer and a worker
    built from the same ``memory://name`` URL meet. A delivery not settled within
    ``visibility_timeout`` seconds (and not extended) becomes deliverable again.
    """

    def __init__(self, *, visibility_timeout: float = 30.0) -> None:
        self.visibility_timeout = visibility_timeout
        self._cond = threading.Condition(threading.Lock())
        self._queues: dict[str, _Queue] = {}
        self._in_flight: dict[int, _Message] = {}
        self._seq = itertools.count(1)
        self._tags = itertools.count(1)
        self._wakeups = 0

    @classmethod
    def named(cls, name: str, *, visibility_timeout: float = 30.0) -> MemoryBroker:
        """The process-wide broker called ``name`` (created on first use)."""
        return _SHARED.get(name, lambda: cls(visibility_timeout=visibility_timeout))

    @classmethod
    def from_config(cls, config: Config) -> MemoryBroker:
        """The process-wide broker that ``memory://<name>`` names, with ``config.visibility_timeout``."""
        return cls.named(config.broker_url.partition("://")[2], visibility_timeout=config.visibility_timeout)

    # -- helpers (caller holds the lock) -------------------------------------------------------

    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = _Queue()
        return q

    def _put(self, msg: _Message, delay: float, now: float) -> None:
        q = self._queue(msg.queue)
        if delay > 0:
            heapq.heappush(q.delayed, (now + delay, msg.seq, msg))
        else:
            heapq.heappush(q.ready, (-msg.priority, msg.seq, msg))

    def _promote(self, now: float) -> float | None:
        """Move due delayed messages and expired leases to ready; the next time something is due."""
        next_due: float | None = None
        for q in self._queues.values():
            while q.delayed and q.delayed[0][0] <= now:
                _, _, msg = heapq.heappop(q.delayed)
                heapq.heappush(q.ready, (-msg.priority, msg.seq, msg))
            if q.delayed and (next_due is None or q.delayed[0][0] < next_due):
                next_due = q.delayed[0][0]
        expired = [tag for tag, msg in self._in_flight.items() if msg.lease_until <= now]
        for tag in expired:
            msg = self._in_flight.pop(tag)
            heapq.heappush(self._queue(msg.queue).ready, (-msg.priority, msg.seq, msg))
        for msg in self._in_flight.values():
            if next_due is None or msg.lease_until < next_due:
                next_due = msg.lease_until
        return next_due

    def _take(self, queues: Sequence[str], max_messages: int, now: float) -> list[Delivery]:
        out: list[Delivery] = []
        heaps = [self._queues[name].ready for name in queues if name in self._queues]
        while len(out) < max_messages:
            best: list[tuple[int, int, _Message]] | None = None
            for heap in heaps:
                if heap and (best is None or heap[0] < best[0]):
                    best = heap
            if best is None:
                break
            _, _, msg = heapq.heappop(best)
            msg.delivery_count += 1
            msg.lease_until = now + self.visibility_timeout
            tag = next(self._tags)
            self._in_flight[tag] = msg
            out.append(Delivery(msg.queue, msg.body, tag, msg.delivery_count, msg.priority, dict(msg.headers)))
        return out

    # -- the Broker protocol ------------------------------------------------------------------

    def declare(self, queues: Sequence[str]) -> None:
        with self._cond:
            for name in queues:
                self._queue(name)

    def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        now = time.monotonic()
        with self._cond:
            for m in messages:
                msg = _Message(m.queue, bytes(m.body), m.priority, dict(m.headers), next(self._seq))
                self._put(msg, m.delay, now)
            self._cond.notify_all()

    def pending(self, queue: str, limit: int) -> list[bytes]:
        """Up to ``limit`` bodies ready in ``queue``, in delivery order (nothing is taken)."""
        with self._cond:
            q = self._queues.get(queue)
            ready = sorted(q.ready, key=lambda item: item[:2]) if q is not None else []
            return [m.body for _p, _s, m in ready[:limit]]

    def delayed(self, limit: int) -> list[tuple[str, float, bytes]]:
        """Up to ``limit`` delayed messages of every queue, soonest first (due times in ``time.time()``)."""
        offset = time.time() - time.monotonic()
        with self._cond:
            items = sorted((due, seq, m) for q in self._queues.values() for due, seq, m in q.delayed)
        return [(m.queue, due + offset, m.body) for due, _seq, m in items[:limit]]

    def fetch(self, queues: Sequence[str], max_messages: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            wakeups = self._wakeups
            while True:
                now = time.monotonic()
                next_due = self._promote(now)
                out = self._take(queues, max_messages, now) if max_messages > 0 else []
                if out or self._wakeups != wakeups or now >= deadline:
                    return out
                until = deadline if next_due is None else min(deadline, next_due)
                self._cond.wait(max(until - now, 0.001))

    def _settle(self, delivery: Delivery) -> _Message | None:
        return self._in_flight.pop(delivery.tag, None)

    def ack(self, delivery: Delivery) -> None:
        with self._cond:
            self._settle(delivery)

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        with self._cond:
            for d in deliveries:
                self._settle(d)

    def nack(self, delivery: Delivery, *, delay: float = 0.0) -> None:
        with self._cond:
            msg = self._settle(delivery)
            if msg is not None:
                self._put(msg, delay, time.monotonic())
                self._cond.notify_all()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._cond:
            msg = self._settle(delivery)
            if msg is not None:
                headers = dead_letter_headers(delivery, reason)
                dead = _Message(dead_letter_queue(msg.queue), msg.body, msg.priority, headers, next(self._seq))
                self._put(dead, 0.0, time.monotonic())

    def dead_letters(self, queue: str, limit: int | None = None) -> list[DeadMessage]:
        """The ready messages of ``<queue>.dead``, oldest first; ids are sequence numbers."""
        with self._cond:
            dq = self._queues.get(dead_letter_queue(queue)) or _Queue()
            messages = sorted((m for _, _, m in dq.ready), key=lambda m: m.seq)[:limit]
            return [DeadMessage.from_headers(str(m.seq), queue, m.body, m.headers, priority=m.priority)
                    for m in messages]

    def requeue_dead(self, queue: str, ids: Sequence[str] | None = None) -> list[str]:
        """Move dead letters back to ``queue`` (under this broker's lock: atomic)."""
        with self._cond:
            dq = self._queues.get(dead_letter_queue(queue)) or _Queue()
            chosen = [m for _, _, m in dq.ready if ids is None or str(m.seq) in ids]
            picked = {m.seq for m in chosen}
            dq.ready = [item for item in dq.ready if item[2].seq not in picked]
            heapq.heapify(dq.ready)
            now = time.monotonic()
            for m in sorted(chosen, key=lambda m: m.seq):
                self._put(_Message(queue, m.body, m.priority, live_headers(m.headers), m.seq), 0.0, now)
            self._cond.notify_all()
            return [str(m.seq) for m in sorted(chosen, key=lambda m: m.seq)]

    def purge_dead(self, queue: str) -> int:
        """Drop the ready dead letters of ``queue``."""
        with self._cond:
            dq = self._queues.get(dead_letter_queue(queue))
            if dq is None:
                return 0
            count, dq.ready = len(dq.ready), []
            return count

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        until = time.monotonic() + self.visibility_timeout
        with self._cond:
            for d in deliveries:
                msg = self._in_flight.get(d.tag)
                if msg is not None:
                    msg.lease_until = until

    def depth(self, queue: str) -> QueueDepth:
        now = time.monotonic()
        with self._cond:
            self._promote(now)
            q = self._queues.get(queue) or _Queue()
            in_flight = sum(1 for m in self._in_flight.values() if m.queue == queue)
            dq = self._queues.get(dead_letter_queue(queue))
            dead = 0 if dq is None else len(dq.ready) + len(dq.delayed) + sum(
                1 for m in self._in_flight.values() if m.queue == dead_letter_queue(queue))
            return QueueDepth(queue, len(q.ready), len(q.delayed), in_flight, dead)

    def wake(self) -> None:
        with self._cond:
            self._wakeups += 1
            self._cond.notify_all()

    def close(self) -> None:
        """Nothing to release; unsettled deliveries come back when their lease expires."""
