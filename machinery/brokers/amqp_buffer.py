"""The AMQP broker's fetch buffer: deliveries that RabbitMQ pushed to this client, waiting for
``fetch``, highest priority first, then in arrival order.

The I/O thread adds the deliveries it reads in one pass of its loop to ``incoming`` and hands them
over together (``hand_over``: one lock, one wake-up); fetching threads take them (``take``). They
wait in one first-in-first-out line per priority. The buffer also counts, per queue, the
deliveries taken and not settled yet (``in_flight``).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence, Set

from machinery.brokers.amqp_acks import stale
from machinery.brokers.base import Delivery

__all__ = ["DeliveryBuffer"]


class DeliveryBuffer:
    """Deliveries read by the I/O thread, waiting for ``take``; thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._lines: dict[int, deque[Delivery]] = {}
        """Priority -> its deliveries in arrival order (empty lines are kept)."""
        self._priorities: list[int] = []
        """The keys of ``_lines``, negated and sorted: the highest priority first."""
        self._count = 0
        self._woken = False
        self._sleepers = 0
        self._held: dict[str, int] = {}
        self.on_arrival: list[Callable[[], None]] = []
        """Each is called (I/O thread, outside the lock) when deliveries are handed over while no
        fetcher waits."""
        # Owned by the I/O thread.
        self._incoming: list[Delivery] = []
        """Deliveries read in the current pass of the I/O loop, handed over at its end."""

    # ----------------------------------------------------------------- the I/O thread's side

    def add(self, delivery: Delivery) -> int:
        """(I/O thread) Add ``delivery`` to those read in this pass; how many there are now."""
        incoming = self._incoming
        incoming.append(delivery)
        return len(incoming)

    def waited_for(self) -> bool:
        """Whether a fetcher waits on an empty buffer (a delivery for it should not wait for the
        end of the pass)."""
        return bool(self._sleepers) and not self._count

    def hand_over(self) -> None:
        """(I/O thread) Move the deliveries read in this pass into the buffer: one lock and one
        wake-up for all of them."""
        incoming = self._incoming
        if not incoming:
            return
        with self._cond:
            lines = self._lines
            line: deque[Delivery] | None = None
            priority = -1
            for delivery in incoming:
                if delivery.priority != priority or line is None:
                    priority = delivery.priority
                    line = lines.get(priority)
                    if line is None:
                        line = lines[priority] = deque()
                        bisect.insort(self._priorities, -priority)
                line.append(delivery)
            self._count += len(incoming)
            waited = self._sleepers
            if waited:
                self._cond.notify_all()
        incoming.clear()
        if not waited:
            for callback in self.on_arrival:
                callback()

    def give_back(self, queue: str) -> list[Delivery]:
        """(I/O thread) Remove and return the buffered deliveries of ``queue`` (no longer consumed)."""
        self.hand_over()
        drop: list[Delivery] = []
        with self._cond:
            for priority, line in self._lines.items():
                if any(d.queue == queue for d in line):
                    drop += [d for d in line if d.queue == queue]
                    self._lines[priority] = deque(d for d in line if d.queue != queue)
            self._count -= len(drop)
        return drop

    def lost(self) -> None:
        """(I/O thread) The connection is gone: every delivery of it is void."""
        self._incoming.clear()
        with self._cond:
            self._lines.clear()
            self._priorities.clear()
            self._count = 0
            self._held.clear()

    # ----------------------------------------------------------------- the fetching side

    def take(self, wanted: Set[str], max_messages: int, deadline: float, consumed: Set[str]) -> list[Delivery]:
        """Up to ``max_messages`` deliveries from the queues ``wanted``, waiting until ``deadline``
        (``time.monotonic``) for the first; ``consumed`` are all queues consumed now (when they are
        all wanted, any buffered delivery will do). Returns early, maybe empty, after ``wake``."""
        out: list[Delivery] = []
        with self._cond:
            while not self._woken and not self._has_any(wanted, consumed):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._sleepers += 1
                try:
                    self._cond.wait(left)
                finally:
                    self._sleepers -= 1
            self._woken = False
            if self._count:
                every = consumed <= wanted
                lines = self._lines
                for negated in self._priorities:
                    line = lines[-negated]
                    if not line:
                        continue
                    if every:
                        out += [line.popleft() for _ in range(min(max_messages - len(out), len(line)))]
                    else:
                        skipped: list[Delivery] = []
                        while line and len(out) < max_messages:
                            delivery = line.popleft()
                            (out if delivery.queue in wanted else skipped).append(delivery)
                        line.extendleft(reversed(skipped))
                    if len(out) >= max_messages:
                        break
                self._count -= len(out)
            held = self._held
            for delivery in out:
                held[delivery.queue] = held.get(delivery.queue, 0) + 1
        return out

    def _has_any(self, wanted: Set[str], consumed: Set[str]) -> bool:
        """(holding ``_cond``) Whether the buffer holds a delivery from one of ``wanted``."""
        if not self._count:
            return False
        if consumed <= wanted:
            return True
        return any(d.queue in wanted for line in self._lines.values() for d in line)

    def settled(self, deliveries: Sequence[Delivery], generation: int) -> list[int]:
        """Count ``deliveries`` as settled; the tags of those of the connection ``generation`` (the
        others are void: dropped with a warning)."""
        tags: list[int] = []
        with self._cond:
            held = self._held
            for delivery in deliveries:
                if not stale(delivery.tag, generation):
                    held[delivery.queue] = held.get(delivery.queue, 1) - 1
                    tags.append(delivery.tag)
        return tags

    def ready(self, queue: str) -> int:
        """How many deliveries of ``queue`` wait here."""
        with self._cond:
            return sum(1 for line in self._lines.values() for d in line if d.queue == queue)

    def in_flight(self, queue: str) -> int:
        """How many deliveries of ``queue`` were taken and not settled yet."""
        with self._cond:
            return self._held.get(queue, 0)

    def wake(self) -> None:
        """Make a blocked ``take`` return now."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()
