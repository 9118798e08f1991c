"""The AMQP broker's fetch buffer: deliveries that RabbitMQ pushed to this client, waiting for
``fetch``, highest priority first, then in arrival order.

The I/O thread adds the deliveries it reads in one pass of its loop to ``incoming`` and hands them
over together (``hand_over``: one lock, one wake-up); fetching threads take them (``take``). The
buffer also counts, per queue, the deliveries taken and not settled yet (``in_flight``).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Sequence, Set
from typing import NamedTuple

from machinery.brokers.amqp_acks import stale
from machinery.brokers.base import Delivery

__all__ = ["Buffered", "DeliveryBuffer"]


class Buffered(NamedTuple):
    """A buffered delivery in heap order."""

    order: int
    """``-priority``: the heap pops the highest priority first."""
    seq: int
    """Arrival order among deliveries of equal priority."""
    delivery: Delivery


class DeliveryBuffer:
    """Deliveries read by the I/O thread, waiting for ``take``; thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[Buffered] = []
        self._seq = itertools.count()
        self._woken = False
        self._sleepers = 0
        self._held: dict[str, int] = {}
        # Owned by the I/O thread.
        self._incoming: list[Buffered] = []
        """Deliveries read in the current pass of the I/O loop, handed over at its end."""

    # ----------------------------------------------------------------- the I/O thread's side

    def add(self, delivery: Delivery) -> int:
        """(I/O thread) Add ``delivery`` to those read in this pass; how many there are now."""
        incoming = self._incoming
        incoming.append(Buffered(-delivery.priority, next(self._seq), delivery))
        return len(incoming)

    def waited_for(self) -> bool:
        """Whether a fetcher waits on an empty buffer (a delivery for it should not wait for the
        end of the pass)."""
        return bool(self._sleepers) and not self._heap

    def hand_over(self) -> None:
        """(I/O thread) Move the deliveries read in this pass into the buffer: one lock and one
        wake-up for all of them."""
        incoming = self._incoming
        if not incoming:
            return
        with self._cond:
            heap = self._heap
            if not heap and len(incoming) > 1:
                incoming.sort()
                heap.extend(incoming)  # a sorted list is a heap
            else:
                for item in incoming:
                    heapq.heappush(heap, item)
            if self._sleepers:
                self._cond.notify_all()
        incoming.clear()

    def give_back(self, queue: str) -> list[Delivery]:
        """(I/O thread) Remove and return the buffered deliveries of ``queue`` (no longer consumed)."""
        self.hand_over()
        with self._cond:
            keep = [item for item in self._heap if item.delivery.queue != queue]
            drop = [item.delivery for item in self._heap if item.delivery.queue == queue]
            heapq.heapify(keep)
            self._heap = keep
        return drop

    def lost(self) -> None:
        """(I/O thread) The connection is gone: every delivery of it is void."""
        self._incoming.clear()
        with self._cond:
            self._heap.clear()
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
            heap = self._heap
            aside: list[Buffered] = []
            while heap and len(out) < max_messages:
                item = heapq.heappop(heap)
                if item.delivery.queue in wanted:
                    out.append(item.delivery)
                else:
                    aside.append(item)
            for item in aside:
                heapq.heappush(heap, item)
            held = self._held
            for delivery in out:
                held[delivery.queue] = held.get(delivery.queue, 0) + 1
        return out

    def _has_any(self, wanted: Set[str], consumed: Set[str]) -> bool:
        """(holding ``_cond``) Whether the buffer holds a delivery from one of ``wanted``."""
        if not self._heap:
            return False
        if consumed <= wanted:
            return True
        return any(item.delivery.queue in wanted for item in self._heap)

    def settled(self, deliveries: Sequence[Delivery], generation: int) -> list[Delivery]:
        """Count ``deliveries`` as settled; those of the connection ``generation`` (the others are
        void: dropped with a warning)."""
        current: list[Delivery] = []
        with self._cond:
            held = self._held
            for delivery in deliveries:
                if not stale(delivery.tag, generation):
                    held[delivery.queue] = held.get(delivery.queue, 1) - 1
                    current.append(delivery)
        return current

    def ready(self, queue: str) -> int:
        """How many deliveries of ``queue`` wait here."""
        with self._cond:
            return sum(1 for item in self._heap if item.delivery.queue == queue)

    def in_flight(self, queue: str) -> int:
        """How many deliveries of ``queue`` were taken and not settled yet."""
        with self._cond:
            return self._held.get(queue, 0)

    def wake(self) -> None:
        """Make a blocked ``take`` return now."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()
