"""The AMQP broker's consumers: which queues this client consumes, and how what RabbitMQ delivers
becomes a ``Delivery`` in the fetch buffer.

A queue is consumed from its first ``fetch`` on (``subscribe``) until nobody fetched it for
``IDLE_CONSUMER`` seconds; then its consumer is cancelled and its buffered deliveries given back.
A delivery arrives on the I/O thread either in a batch read by the fast path's frame scanner
(``on_deliveries``) or one by one from pika (``on_message``); both lead to ``_accept``, which counts
its deliveries (redelivered flag, the broker's own header, a quorum queue's ``x-delivery-count``),
keeps the user's headers, and delays again a delayed message that came back early.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, KeysView, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pika.channel import Channel
from pika.data import decode_table
from pika.spec import Basic, BasicProperties

from machinery._speedups import Delivered
from machinery.brokers.amqp_acks import TAG_BITS, TAG_MASK, AckCoalescer
from machinery.brokers.amqp_buffer import DeliveryBuffer
from machinery.brokers.amqp_confirms import after_confirm
from machinery.brokers.amqp_connection import AMQPConnection
from machinery.brokers.amqp_topology import DELIVERIES_HEADER, DUE_HEADER, INTERNAL_HEADERS, Topology, delay_queue
from machinery.brokers.base import Delivery

if TYPE_CHECKING:
    from pika.frame import Method

__all__ = ["IDLE_CONSUMER", "LINGER", "Consumers"]

log = logging.getLogger("machinery.brokers.amqp")

_EMPTY: Mapping[str, str] = {}
#: Seconds the first fetch of a queue waits for what the queue already holds to arrive, so that it
#: is ordered by priority across the queues.
LINGER = 0.05
#: Seconds without a fetch of a queue after which its consumer is cancelled (its buffer given back).
IDLE_CONSUMER = 30.0


class Consumers:
    """The consumers of one broker on ``connection``'s consuming channel, feeding ``buffer``."""

    def __init__(self, connection: AMQPConnection, topology: Topology, buffer: DeliveryBuffer,
                 acks: AckCoalescer) -> None:
        self._connection = connection
        self._topology = topology
        self._buffer = buffer
        self._acks = acks
        # Shared with other threads (under ``_lock``).
        self._lock = threading.Lock()
        self._want: dict[str, float] = {}
        """Queues fetched from, with when they were last fetched (consumed while recently fetched)."""
        # Owned by the I/O thread.
        self._ticking = False
        self._consumers: dict[str, str] = {}
        self._consumer_queue: dict[str, str] = {}

    @property
    def wanted(self) -> KeysView[str]:
        """The queues consumed (or about to be), a live view."""
        return self._want.keys()

    def subscribe(self, queues: Sequence[str], deadline: float) -> None:
        """Note that ``queues`` are being fetched now; consume the new ones (declared first), waiting
        until ``deadline`` (``time.monotonic``) at most for RabbitMQ to confirm and then ``LINGER``
        for what they hold. (Any thread.)"""
        with self._lock:
            new = [q for q in queues if q not in self._want]
            now = time.monotonic()
            for q in queues:
                self._want[q] = now
        if not new:
            return
        self._topology.declare(sorted(new))
        subscribed = threading.Event()
        self._connection.submit(functools.partial(self.sync, subscribed.set))
        subscribed.wait(max(0.0, min(deadline - now, self._connection.timeout)))
        time.sleep(min(LINGER, max(0.0, deadline - time.monotonic())))

    def touch(self, queues: Sequence[str]) -> None:
        """Note that ``queues`` were fetched now (they stay consumed). (Any thread.)"""
        with self._lock:
            now = time.monotonic()
            for q in queues:
                self._want[q] = now

    # ----------------------------------------------------------------- the I/O thread

    def sync(self, subscribed: Callable[[], None] | None = None) -> None:
        """(I/O thread) Consume the queues fetched recently; cancel the others and give back what
        was buffered for them. ``subscribed`` is called once RabbitMQ confirmed every new consumer."""
        channel = self._connection.consuming
        if channel is None:
            return
        now = time.monotonic()
        with self._lock:
            idle = [q for q, at in self._want.items() if now - at > IDLE_CONSUMER]
            for queue in idle:
                del self._want[queue]
            want = set(self._want)
        for queue in list(self._consumers):
            if queue not in want:
                tag = self._consumers.pop(queue)
                self._consumer_queue.pop(tag, None)
                channel.basic_cancel(tag)
                for delivery in self._buffer.give_back(queue):
                    self._acks.reject(delivery.tag & TAG_MASK)
        waiting = [queue for queue in want if queue not in self._consumers]
        left = [len(waiting)]

        def consume_ok(_frame: Method[Basic.ConsumeOk]) -> None:
            left[0] -= 1
            if left[0] == 0 and subscribed is not None:
                subscribed()

        for queue in waiting:
            tag = channel.basic_consume(queue, self.on_message, callback=consume_ok)
            self._consumers[queue] = tag
            self._consumer_queue[tag] = queue
        if not waiting and subscribed is not None:
            subscribed()

    def resumed(self) -> None:
        """(I/O thread) Consume again what was consumed before; start the idle-consumer check."""
        if self._want:
            self.sync()
        if not self._ticking:
            self._ticking = True
            self._connection.call_later(IDLE_CONSUMER / 4, self._tick)

    def _tick(self) -> None:
        """(I/O thread) Every few seconds: drop consumers of queues nobody fetches any more."""
        if self._connection.closing:
            return
        if self._connection.ready and self._consumers:
            self.sync()
        self._connection.call_later(IDLE_CONSUMER / 4, self._tick)

    def lost(self) -> None:
        """(I/O thread) The connection is gone, and its consumers with it."""
        self._consumers.clear()
        self._consumer_queue.clear()

    def on_message(self, ch: Channel, method: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
        """(I/O thread) One delivery that pika read (the fast path hands the others in batches to
        ``on_deliveries``)."""
        if ch is not self._connection.consuming:
            return
        item = (method.consumer_tag or "", method.delivery_tag or 0, bool(method.redelivered), props.priority or 0,
                None, body)
        count = self._accept(item, props.headers)
        if count == 1:
            buffer = self._buffer
            if buffer.waited_for():
                # A fetcher waits for this one: hand it over now rather than at the end of the pass
                # (the rest of a burst read in this pass is still handed over in one batch).
                buffer.hand_over()
            else:
                self._connection.call_later(0, buffer.hand_over)

    def on_deliveries(self, batch: list[Delivered]) -> None:
        """(I/O thread) Deliveries read by the fast path's frame scanner, handed over together."""
        accept = self._accept
        for item in batch:
            table = item[4]
            headers = None
            if table is not None:
                try:
                    headers = decode_table(table, 0)[0]
                except Exception as exc:  # RabbitMQ passed a table pika cannot read: keep the message
                    log.warning("delivery %d has headers that cannot be read (%s); delivering it without them",
                                item[1], type(exc).__name__)
            accept(item, headers)
        self._buffer.hand_over()

    def _accept(self, item: Delivered, raw: Mapping[Any, object] | None) -> int:
        """(I/O thread) Add one delivery (with its decoded headers, ``raw``) to the buffer's incoming
        ones, and return how many there are; 0 when it was given back (no consumer of ours) or is a
        delayed message come back early (delayed again)."""
        consumer_tag, tag, redelivered, priority, _table, body = item
        queue = self._consumer_queue.get(consumer_tag)
        if queue is None:
            self._acks.reject(tag)
            return 0
        headers: Mapping[str, str] = _EMPTY
        count = 2 if redelivered else 1
        if raw:
            due = raw.get(DUE_HEADER)
            if isinstance(due, int) and due > time.time() * 1000.0:
                self._delay_again(queue, tag, priority=priority, raw=raw, body=body, due=due)
                return 0
            before = raw.get(DELIVERIES_HEADER)
            if isinstance(before, int):
                count += before
            quorum = raw.get("x-delivery-count")
            if isinstance(quorum, int):
                count = max(count, (before if isinstance(before, int) else 0) + quorum + 1)
            headers = {
                k: (v if isinstance(v, str) else v.decode("utf-8", "replace"))
                for k, v in raw.items()
                if isinstance(k, str) and isinstance(v, str | bytes) and k not in INTERNAL_HEADERS
            }
        generation = self._connection.generation
        return self._buffer.add(Delivery(queue, body, (generation << TAG_BITS) | tag, count, priority, headers))

    def _delay_again(
        self, queue: str, tag: int, *, priority: int, raw: Mapping[Any, object], body: bytes, due: int
    ) -> None:
        """(I/O thread) Put an early message into the bucket for the rest of its wait, then ack it."""
        bucket, out = self._topology.delayed_again(queue, body, priority=priority, raw=raw, due=due)
        generation = self._connection.generation
        acks = self._acks

        def declared(error: str | None) -> None:
            if error is None:
                self._connection.publish_now(
                    [out], after_confirm(lambda ok: acks.settle_copied(generation, tag, ok)))
            else:
                log.error("cannot declare delay queue %s: %s", delay_queue(self._topology.exchange, bucket), error)
                acks.settle_copied(generation, tag, False)

        self._topology.ensure_bucket_then(bucket, declared)
