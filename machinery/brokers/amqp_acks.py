"""The settling half of the AMQP broker: acks from any thread collected on the I/O thread and sent
coalesced.

Task threads queue acks under a lock; the I/O thread collects them on a short tick while they keep
coming (a task thread wakes it only when it is not ticking, or once half the prefetch is waiting)
and sends one ``multiple`` ack up to the highest delivery tag below which everything is settled,
single acks for settled tags above it. Delivery tags carry the connection generation in their high
bits (``TAG_BITS``), so a settlement from a lost connection is recognised and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from machinery.brokers.amqp_connection import AMQPConnection
from machinery.tls import TLSSettings

__all__ = ["TAG_BITS", "TAG_MASK", "AckingConnection"]

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


class AckingConnection(AMQPConnection):
    """``AMQPConnection`` plus coalesced acks of the deliveries it consumed."""

    def __init__(
        self,
        url: str,
        *,
        prefetch_count: int,
        connect_attempts: int,
        publish_retries: int,
        timeout: float,
        tls: TLSSettings | None = None,
    ) -> None:
        super().__init__(url, prefetch_count=prefetch_count, connect_attempts=connect_attempts,
                         publish_retries=publish_retries, timeout=timeout, tls=tls)
        # Shared with other threads (under ``_lock``).
        self._acks: list[int] = []
        self._ack_scheduled = False
        self._ack_polling = False
        self._idle_ticks = 0
        self._ack_batch = max(1, prefetch_count // 2)
        # Owned by the I/O thread.
        self._floor = 0
        self._done: set[int] = set()
        self._acked_above: set[int] = set()

    def _reset_acks(self) -> None:
        """(I/O thread) The connection is gone: what was settled on it is void."""
        self._floor = 0
        self._done.clear()
        self._acked_above.clear()

    def _ack_tags(self, tags: Sequence[int]) -> None:
        """Queue acks of the (generation-tagged) ``tags`` for the I/O thread. It is woken only when
        it is not collecting acks on its own (``_ack_tick``) or when half the prefetch is waiting."""
        with self._lock:
            acks = self._acks
            acks.extend(tags)
            if self._ack_scheduled or (self._ack_polling and len(acks) < self._ack_batch):
                return
            self._ack_scheduled = True
        self._submit(self._take_acks)

    def _ack_tick(self) -> None:
        """(I/O thread) Collect acks every ``_ACK_TICK`` seconds while they keep coming; stop (and
        let task threads wake this thread again) after ``_ACK_IDLE_TICKS`` ticks that found none."""
        with self._lock:
            if self._closing:
                self._ack_polling = False
                return
            if not self._acks:
                self._idle_ticks += 1
                if self._idle_ticks >= _ACK_IDLE_TICKS:
                    self._ack_polling = False
                    self._idle_ticks = 0
                    return
            else:
                self._idle_ticks = 0
            self._ack_polling = False  # re-armed by _take_acks
        self._take_acks()

    def _take_acks(self) -> None:
        """(I/O thread) Move acks from task threads into the settled set and send them."""
        with self._lock:
            acks, self._acks = self._acks, []
            self._ack_scheduled = False
            arm = not self._ack_polling and not self._closing
            if arm:
                self._ack_polling = True
        if arm and self._ioloop is not None:
            self._ioloop.call_later(_ACK_TICK, self._ack_tick)
        gen = self._gen
        for full in acks:
            tag = full & TAG_MASK
            if full >> TAG_BITS != gen:
                log.warning("dropping ack of a delivery from a lost connection (RabbitMQ delivers it again)")
            elif tag <= self._floor or tag in self._acked_above or tag in self._done:
                log.warning("dropping a second settlement of delivery %d", tag)
            else:
                self._done.add(tag)
        self._flush_acks()

    def _flush_acks(self) -> None:
        """(I/O thread) One ``multiple`` ack up to the highest tag below which all is settled, then
        single acks for settled deliveries above it."""
        con = self._con
        if con is None or not self._done or not con.is_open:
            return  # a closing channel takes no acks; its deliveries return to the queue
        done, above = self._done, self._acked_above
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
        if highest:
            con.basic_ack(highest, multiple=True)
        for tag in done:
            con.basic_ack(tag)
            above.add(tag)
        done.clear()

    def _settle_local(self, gen: int, tag: int, ok: bool) -> None:
        """(I/O thread) Ack a delivery whose copy was confirmed, or requeue it when that failed."""
        if gen != self._gen or self._con is None:
            return
        if ok:
            self._done.add(tag)
            self._flush_acks()
        else:
            self._con.basic_reject(tag, requeue=True)
            self._acked_above.add(tag)
