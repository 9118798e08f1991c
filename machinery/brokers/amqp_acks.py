"""The AMQP broker's acks: collected from any thread, sent coalesced by the I/O thread.

Task threads queue acks under a lock; the I/O thread collects them on a short tick while they keep
coming (a task thread wakes it only when it is not ticking, or once half the prefetch is waiting)
and sends one ``multiple`` ack up to the highest delivery tag below which everything is settled,
single acks for settled tags above it. A delivery's tag carries the connection generation in its
high bits (``TAG_BITS``), so a settlement from a lost connection is recognised (``stale``) and
dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from machinery.brokers.amqp_connection import AMQPConnection

__all__ = ["TAG_BITS", "TAG_MASK", "AckCoalescer", "stale"]

log = logging.getLogger("machinery.brokers.amqp")

#: Bits of a delivery's tag that hold RabbitMQ's delivery tag; the connection generation is above.
TAG_BITS = 48
TAG_MASK = (1 << TAG_BITS) - 1
#: Seconds between collections of acks while they keep coming (task threads need not wake the I/O
#: thread for each); acks wait at most this long, or less once half the prefetch is waiting.
_ACK_TICK = 0.001
#: Ticks without acks after which the I/O thread stops collecting (a worker that batches its acks
#: every couple of milliseconds keeps it collecting, so it is not woken per batch).
_ACK_IDLE_TICKS = 4


def stale(tag: int, generation: int) -> bool:
    """Whether the delivery ``tag`` (generation-tagged) is from a connection before ``generation``;
    such a settlement is dropped, with a warning: RabbitMQ delivers the message again."""
    if tag >> TAG_BITS == generation:
        return False
    log.warning("dropping the settlement of a delivery from a lost connection (RabbitMQ delivers it again)")
    return True


class AckCoalescer:
    """Acks of the deliveries consumed on ``connection``'s consuming channel, coalesced."""

    def __init__(self, connection: AMQPConnection) -> None:
        self._connection = connection
        # Shared with other threads (under ``_lock``).
        self._lock = threading.Lock()
        self._acks: list[int] = []
        self._scheduled = False
        self._polling = False
        self._idle_ticks = 0
        self._batch = max(1, connection.prefetch_count // 2)
        # Owned by the I/O thread.
        self._floor = 0
        self._done: set[int] = set()
        self._settled_above: set[int] = set()
        """Tags above ``_floor`` settled without an ack of ours (acked singly, or rejected)."""

    def ack(self, tags: Sequence[int]) -> None:
        """Queue acks of the (generation-tagged) ``tags`` for the I/O thread. It is woken only when
        it is not collecting acks on its own or when half the prefetch is waiting. (Any thread; on
        the I/O thread itself they are sent at once.)"""
        connection = self._connection
        if connection.on_io_thread():  # e.g. acked as its follow-ups' confirms are read: send now
            self._mark(tags)
            self._flush()
            return
        with self._lock:
            acks = self._acks
            acks.extend(tags)
            if self._scheduled or (self._polling and len(acks) < self._batch):
                return
            self._scheduled = True
        connection.submit(self.send)

    def send(self) -> None:
        """(I/O thread) Take the acks queued by other threads and send them."""
        connection = self._connection
        with self._lock:
            acks, self._acks = self._acks, []
            self._scheduled = False
            arm = not self._polling and not connection.closing
            if arm:
                self._polling = True
        if arm:
            connection.call_later(_ACK_TICK, self._tick)
        self._mark(acks)
        self._flush()

    def _mark(self, acks: Sequence[int]) -> None:
        """(I/O thread) Count the (generation-tagged) ``acks`` as done, unless stale or repeated."""
        gen = self._connection.generation
        for full in acks:
            tag = full & TAG_MASK
            if stale(full, gen):
                continue
            if tag <= self._floor or tag in self._settled_above or tag in self._done:
                log.warning("dropping a second settlement of delivery %d", tag)
            else:
                self._done.add(tag)

    def _tick(self) -> None:
        """(I/O thread) Collect acks every ``_ACK_TICK`` seconds while they keep coming; stop (and
        let task threads wake this thread again) after ``_ACK_IDLE_TICKS`` ticks that found none."""
        with self._lock:
            if self._connection.closing:
                self._polling = False
                return
            if not self._acks:
                self._idle_ticks += 1
                if self._idle_ticks >= _ACK_IDLE_TICKS:
                    self._polling = False
                    self._idle_ticks = 0
                    return
            else:
                self._idle_ticks = 0
            self._polling = False  # re-armed by send
        self.send()

    def _flush(self) -> None:
        """(I/O thread) One ``multiple`` ack up to the highest tag below which all is settled, then
        single acks for settled deliveries above it."""
        channel = self._connection.consuming
        if channel is None or not self._done or not channel.is_open:
            return  # a closing channel takes no acks; its deliveries return to the queue
        done, above = self._done, self._settled_above
        floor = self._floor
        highest = 0
        while True:
            nxt = floor + 1
            if nxt in done:
                done.discard(nxt)
                highest = nxt
            elif nxt in above:
                above.discard(nxt)
            else:
                break
            floor = nxt
        self._floor = floor
        send = self._connection.send_ack
        if highest:
            send(channel, highest, True)
        for tag in done:
            send(channel, tag, False)
            above.add(tag)
        done.clear()

    def reject(self, tag: int) -> None:
        """(I/O thread) Give delivery ``tag`` (RabbitMQ's, without generation) back to its queue."""
        channel = self._connection.consuming
        if channel is not None:
            channel.basic_reject(tag, requeue=True)
            self._settled_above.add(tag)

    def settle_copied(self, generation: int, tag: int, ok: bool) -> None:
        """(I/O thread) Ack delivery ``tag`` whose copy was confirmed (``ok``), or requeue it when
        that failed; nothing when its connection (``generation``) is gone."""
        if generation != self._connection.generation or self._connection.consuming is None:
            return
        if ok:
            self._done.add(tag)
            self._flush()
        else:
            self.reject(tag)

    def lost(self) -> None:
        """(I/O thread) The connection is gone: what was settled on it is void."""
        self._floor = 0
        self._done.clear()
        self._settled_above.clear()
