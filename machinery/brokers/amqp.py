"""The AMQP broker: RabbitMQ through pika, with publisher confirms, dead letters, delays held by
RabbitMQ and reconnection.

The I/O thread and its channels are in ``amqp_connection``, the topology rules (exchange, routing
keys, dead-letter and delay queues) in ``amqp_topology``. Deliveries wait in a local buffer that
``fetch`` drains (handed over once per pass of the I/O loop, not per message, except that the
first delivery of a pass goes at once to a fetcher waiting on an empty buffer); acks from any
thread are collected and coalesced on the I/O thread (``amqp_acks``).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pika.channel import Channel
from pika.data import decode_table
from pika.spec import Basic, BasicProperties

from machinery._speedups import Delivered
from machinery.brokers.amqp_acks import TAG_BITS, TAG_MASK, AckingConnection
from machinery.brokers.amqp_connection import AfterConfirm, Resolved, Step
from machinery.brokers.amqp_socket import PERSISTENT
from machinery.brokers.amqp_topology import (
    BUCKET_HEADER,
    DELAY_BUCKETS,
    DELIVERIES_HEADER,
    DUE_HEADER,
    INTERNAL_HEADERS,
    bucket_for,
    delay_exchange,
    delay_queue,
)
from machinery.brokers.base import REASON_HEADER, Delivery, OutgoingMessage, QueueDepth, dead_letter_queue
from machinery.errors import BrokerError
from machinery.jsonvalues import thaw
from machinery.tls import TLSSettings

if TYPE_CHECKING:
    from pika.frame import Method

    from machinery.config import Config

__all__ = ["AMQPBroker"]

log = logging.getLogger(__name__)

_EMPTY: Mapping[str, str] = {}
_EXCHANGE_TYPES = ("direct", "topic", "fanout")
_LINGER = 0.05
#: Seconds without a fetch of a queue after which its consumer is cancelled (its buffer given back).
_IDLE_CONSUMER = 30.0

class AMQPBroker(AckingConnection):
    """A ``Broker`` on RabbitMQ (``amqp://`` or ``amqps://``): at-least-once, confirmed publishes."""

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "machinery_exchange",
        exchange_type: str = "direct",
        default_queue: str = "machinery_tasks",
        binding_key: str = "machinery_task",
        prefetch_count: int = 16,
        queue_declare_args: Mapping[str, object] | None = None,
        connect_attempts: int = 6,
        publish_retries: int = 5,
        timeout: float = 30.0,
        tls: TLSSettings | None = None,
    ) -> None:
        if exchange_type not in _EXCHANGE_TYPES:
            raise BrokerError(f"exchange_type must be one of {', '.join(_EXCHANGE_TYPES)}, got {exchange_type!r}")
        super().__init__(url, prefetch_count=prefetch_count, connect_attempts=connect_attempts,
                         publish_retries=publish_retries, timeout=timeout, tls=tls)
        self.exchange = exchange
        self.exchange_type = exchange_type
        self.default_queue = default_queue
        self.binding_key = binding_key
        self._queue_args: dict[str, object] = dict(queue_declare_args or {})
        dead_type = self._queue_args.get("x-queue-type")
        self._dead_args: dict[str, object] = {"x-queue-type": dead_type} if dead_type is not None else {}

        # Shared with other threads.
        self._cond = threading.Condition(threading.Lock())
        self._buffer: list[tuple[int, int, Delivery]] = []
        self._seq = itertools.count()
        self._woken = False
        self._sleepers = 0
        self._held: dict[str, int] = {}
        self._declared: set[str] = set()
        self._buckets: set[int] = set()
        self._want: dict[str, float] = {}
        """Queues fetched from, with when they were last fetched (consumed while recently fetched)."""

        # Owned by the I/O thread.
        self._ticking = False
        self._consumers: dict[str, str] = {}
        self._consumer_queue: dict[str, str] = {}
        self._incoming: list[tuple[int, int, Delivery]] = []
        """Deliveries read in the current pass of the I/O loop, handed to the buffer at its end."""

    @classmethod
    def from_config(cls, config: Config) -> AMQPBroker:
        """The broker that ``config`` describes (URL, exchange, queues, prefetch, queue arguments)."""
        args = thaw(config.queue_declare_args)
        return cls(
            config.broker_url,
            exchange=config.exchange,
            exchange_type=config.exchange_type,
            default_queue=config.default_queue,
            binding_key=config.binding_key,
            prefetch_count=config.prefetch_count,
            queue_declare_args=args if isinstance(args, dict) else None,
            tls=TLSSettings.from_config(config),
        )

    def __repr__(self) -> str:
        return f"AMQPBroker({self._safe_url!r}, exchange={self.exchange!r}, default_queue={self.default_queue!r})"

    # ----------------------------------------------------------------- topology

    def routing_key(self, queue: str) -> str:
        """The routing key that reaches ``queue`` through the exchange (see ``amqp_topology``)."""
        return self.binding_key if queue == self.default_queue else queue

    def declare(self, queues: Sequence[str]) -> None:
        """Declare the exchange, ``queues`` bound to it and their dead-letter queues."""
        missing = [q for q in queues if q not in self._declared]
        if not missing:
            return
        steps: list[Step] = [
            lambda ch, cb: ch.exchange_declare(self.exchange, self.exchange_type, durable=True, callback=cb)
        ]
        for queue in missing:
            steps.extend(self._queue_steps(queue))
        self._admin(steps)
        self._declared.update(missing)

    def _queue_steps(self, queue: str) -> list[Step]:
        if queue.endswith(".dead"):
            return [lambda ch, cb: ch.queue_declare(queue, durable=True, arguments=self._dead_args, callback=cb)]
        dead = dead_letter_queue(queue)
        key = self.routing_key(queue)
        return [
            lambda ch, cb: ch.queue_declare(queue, durable=True, arguments=self._queue_args, callback=cb),
            lambda ch, cb: ch.queue_bind(queue, self.exchange, key, callback=cb),
            lambda ch, cb: ch.queue_declare(dead, durable=True, arguments=self._dead_args, callback=cb),
        ]

    def _bucket_steps(self, bucket: int) -> list[Step]:
        ex = delay_exchange(self.exchange)
        name = delay_queue(self.exchange, bucket)
        args = {"x-message-ttl": 1 << bucket, "x-dead-letter-exchange": ""}
        match = {"x-match": "all", BUCKET_HEADER: str(bucket)}
        return [
            lambda ch, cb: ch.exchange_declare(ex, "headers", durable=True, callback=cb),
            lambda ch, cb: ch.queue_declare(name, durable=True, arguments=args, callback=cb),
            lambda ch, cb: ch.queue_bind(name, ex, "", arguments=match, callback=cb),
        ]

    def _ensure_bucket(self, bucket: int) -> None:
        if bucket not in self._buckets:
            self._admin(self._bucket_steps(bucket))
            self._buckets.add(bucket)

    # ----------------------------------------------------------------- publishing

    def publish(
        self,
        queue: str,
        body: bytes,
        *,
        delay: float = 0.0,
        priority: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Publish one persistent message and wait for RabbitMQ's confirm."""
        self.publish_many([OutgoingMessage(queue, body, delay, priority, headers or _EMPTY)])

    def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish all ``messages``, then wait for all their confirms (pipelined, not one by one)."""
        if not messages:
            return
        self.declare(sorted({m.queue for m in messages}))
        outs = [self._resolve(m.queue, m.body, delay=m.delay, priority=m.priority, headers=m.headers,
                              deliveries=None) for m in messages]
        self._publish_confirmed(outs)

    def _resolve(
        self,
        queue: str,
        body: bytes,
        *,
        delay: float,
        priority: int,
        headers: Mapping[str, str],
        deliveries: int | None,
    ) -> Resolved:
        """Where and how a message for ``queue`` is published; a delayed one goes to its bucket."""
        if delay <= 0 and not headers and not priority and deliveries is None:
            return Resolved(self.exchange, self.routing_key(queue), body, PERSISTENT)
        h: dict[str, str | int] = dict(headers)
        if deliveries is not None:
            h[DELIVERIES_HEADER] = deliveries
        if delay > 0:
            remaining_ms = delay * 1000.0
            h[DUE_HEADER] = int(time.time() * 1000.0 + remaining_ms + 0.999)
            bucket = bucket_for(remaining_ms)
            self._ensure_bucket(bucket)
            h[BUCKET_HEADER] = str(bucket)
            props = BasicProperties(delivery_mode=2, priority=priority or None, headers=h)
            return Resolved(delay_exchange(self.exchange), queue, body, props)
        props = BasicProperties(delivery_mode=2, priority=priority or None, headers=h or None)
        if deliveries is not None:
            return Resolved("", queue, body, props)
        return Resolved(self.exchange, self.routing_key(queue), body, props)

    # ----------------------------------------------------------------- consuming

    def fetch(self, queues: Sequence[str], max_messages: int, timeout: float) -> list[Delivery]:
        """Up to ``max_messages`` buffered deliveries from ``queues``, waiting up to ``timeout``.

        The first fetch of a queue subscribes to it and lingers a moment (``_LINGER``) so that what
        the queue already holds arrives and is ordered by priority across the queues. A queue not
        fetched for ``_IDLE_CONSUMER`` seconds is unsubscribed and its buffered messages given back."""
        wanted = frozenset(queues)
        deadline = time.monotonic() + timeout
        with self._lock:
            new = [q for q in queues if q not in self._want]
            now = time.monotonic()
            for q in queues:
                self._want[q] = now
        if new:
            self.declare(sorted(new))
            subscribed = threading.Event()
            self._submit(functools.partial(self._sync_consumers, subscribed.set))
            subscribed.wait(max(0.0, min(timeout, self._timeout)))
            time.sleep(min(_LINGER, max(0.0, deadline - time.monotonic())))
        out: list[Delivery] = []
        with self._cond:
            while not self._woken and not self._has_any(wanted):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._sleepers += 1
                try:
                    self._cond.wait(left)
                finally:
                    self._sleepers -= 1
            self._woken = False
            buffer = self._buffer
            aside: list[tuple[int, int, Delivery]] = []
            while buffer and len(out) < max_messages:
                item = heapq.heappop(buffer)
                if item[2].queue in wanted:
                    out.append(item[2])
                else:
                    aside.append(item)
            for item in aside:
                heapq.heappush(buffer, item)
            held = self._held
            for delivery in out:
                held[delivery.queue] = held.get(delivery.queue, 0) + 1
        with self._lock:
            now = time.monotonic()
            for q in queues:
                self._want[q] = now
        return out

    def _has_any(self, wanted: frozenset[str]) -> bool:
        """(holding ``_cond``) Whether the buffer holds a delivery from one of ``wanted``."""
        if not self._buffer:
            return False
        if self._want.keys() <= wanted:
            return True
        return any(item[2].queue in wanted for item in self._buffer)

    def _release(self, delivery: Delivery) -> bool:
        """Count ``delivery`` as settled here; False when it came from a lost connection."""
        with self._cond:
            if delivery.tag >> TAG_BITS != self._gen:
                log.warning("dropping the settlement of a delivery from a lost connection "
                            "(RabbitMQ delivers it again)")
                return False
            self._held[delivery.queue] = self._held.get(delivery.queue, 1) - 1
        return True

    def _sync_consumers(self, subscribed: Callable[[], None] | None = None) -> None:
        """(I/O thread) Consume the queues fetched recently; cancel the others and give back what
        was buffered for them. ``subscribed`` is called once RabbitMQ confirmed every new consumer."""
        con = self._con
        if con is None:
            return
        now = time.monotonic()
        with self._lock:
            idle = [q for q, at in self._want.items() if now - at > _IDLE_CONSUMER]
            for queue in idle:
                del self._want[queue]
            want = set(self._want)
        for queue in list(self._consumers):
            if queue not in want:
                tag = self._consumers.pop(queue)
                self._consumer_queue.pop(tag, None)
                con.basic_cancel(tag)
                self._give_back(queue)
        waiting = [queue for queue in want if queue not in self._consumers]
        left = [len(waiting)]

        def consume_ok(_frame: Method[Basic.ConsumeOk]) -> None:
            left[0] -= 1
            if left[0] == 0 and subscribed is not None:
                subscribed()

        for queue in waiting:
            tag = con.basic_consume(queue, self._on_message, callback=consume_ok)
            self._consumers[queue] = tag
            self._consumer_queue[tag] = queue
        if not waiting and subscribed is not None:
            subscribed()

    def _tick(self) -> None:
        """(I/O thread) Every few seconds: drop consumers of queues nobody fetches any more."""
        if self._closing:
            return
        if self._ready and self._consumers:
            self._sync_consumers()
        assert self._ioloop is not None
        self._ioloop.call_later(_IDLE_CONSUMER / 4, self._tick)

    def _give_back(self, queue: str) -> None:
        """(I/O thread) Requeue the buffered deliveries of a queue no longer consumed."""
        self._hand_over()
        with self._cond:
            keep = [item for item in self._buffer if item[2].queue != queue]
            drop = [item[2] for item in self._buffer if item[2].queue == queue]
            heapq.heapify(keep)
            self._buffer = keep
        for delivery in drop:
            if self._con is not None:
                tag = delivery.tag & TAG_MASK
                self._con.basic_reject(tag, requeue=True)
                self._acked_above.add(tag)

    def _on_message(self, ch: Channel, method: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
        """(I/O thread) One delivery that pika read (the others come in batches to ``_on_deliveries``)."""
        if ch is not self._con:
            return
        item = (method.consumer_tag or "", method.delivery_tag or 0, bool(method.redelivered), props.priority or 0,
                None, body)
        if not self._accept(item, props.headers):
            return
        if len(self._incoming) == 1:
            if self._sleepers and not self._buffer:
                # A fetcher waits for this one: hand it over now rather than at the end of the pass
                # (the rest of a burst read in this pass is still handed over in one batch).
                self._hand_over()
            else:
                assert self._ioloop is not None
                self._ioloop.call_later(0, self._hand_over)

    def _on_deliveries(self, batch: list[Delivered]) -> None:
        """(I/O thread) Deliveries read by the connection's frame scanner, handed over together."""
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
        self._hand_over()

    def _accept(self, item: Delivered, raw: Mapping[Any, object] | None) -> bool:
        """(I/O thread) Add one delivery (with its decoded headers, ``raw``) to those read in this
        pass; False when it was given back (no consumer of ours) or is a delayed message come back
        early (delayed again)."""
        consumer_tag, tag, redelivered, priority, _table, body = item
        queue = self._consumer_queue.get(consumer_tag)
        con = self._con
        if queue is None or con is None:
            if con is not None:
                con.basic_reject(tag, requeue=True)
                self._acked_above.add(tag)
            return False
        headers: Mapping[str, str] = _EMPTY
        count = 2 if redelivered else 1
        if raw:
            due = raw.get(DUE_HEADER)
            if isinstance(due, int) and due > time.time() * 1000.0:
                self._redelay(queue, tag, priority=priority, raw=raw, body=body, due=due)
                return False
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
        delivery = Delivery(queue, body, (self._gen << TAG_BITS) | tag, count, priority, headers)
        self._incoming.append((-priority, next(self._seq), delivery))
        return True

    def _hand_over(self) -> None:
        """(I/O thread) Move the deliveries read in this pass of the I/O loop into the buffer that
        ``fetch`` drains: one lock and one wake-up for all of them."""
        incoming = self._incoming
        if not incoming:
            return
        with self._cond:
            buffer = self._buffer
            if not buffer and len(incoming) > 1:
                incoming.sort()
                buffer.extend(incoming)  # a sorted list is a heap
            else:
                for item in incoming:
                    heapq.heappush(buffer, item)
            if self._sleepers:
                self._cond.notify_all()
        incoming.clear()

    def _redelay(
        self, queue: str, tag: int, *, priority: int, raw: Mapping[Any, object], body: bytes, due: int
    ) -> None:
        """(I/O thread) Put an early message into the bucket for the rest of its wait, then ack it."""
        bucket = bucket_for(due - time.time() * 1000.0)
        headers: dict[str, Any] = {k: v for k, v in raw.items() if isinstance(k, str)}
        headers[BUCKET_HEADER] = str(bucket)
        for key in ("x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
                    "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"):
            headers.pop(key, None)
        out = Resolved(delay_exchange(self.exchange), queue, body,
                   BasicProperties(delivery_mode=2, priority=priority or None, headers=headers))
        gen = self._gen

        def publish() -> None:
            self._publish_now([out], AfterConfirm(lambda ok: self._settle_local(gen, tag, ok)))

        if bucket in self._buckets:
            publish()
        else:
            def declared(error: str | None) -> None:
                if error is None:
                    self._buckets.add(bucket)
                    publish()
                else:
                    log.error("cannot declare delay queue %s: %s", delay_queue(self.exchange, bucket), error)
                    self._settle_local(gen, tag, False)
            self._run_steps(self._bucket_steps(bucket), declared, [])

    # ----------------------------------------------------------------- settling

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge ``delivery`` (sent soon, coalesced with others; never blocks)."""
        if not self._release(delivery):
            return
        self._ack(delivery)

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge all ``deliveries`` as ``ack`` does each, with one hand-off to the I/O thread."""
        if not deliveries:
            return
        with self._cond:
            gen = self._gen
            held = self._held
            tags: list[int] = []
            for delivery in deliveries:
                if delivery.tag >> TAG_BITS != gen:
                    log.warning("dropping the settlement of a delivery from a lost connection "
                                "(RabbitMQ delivers it again)")
                    continue
                held[delivery.queue] = held.get(delivery.queue, 1) - 1
                tags.append(delivery.tag)
        if tags:
            self._ack_tags(tags)

    def _ack(self, delivery: Delivery) -> None:
        self._ack_tags((delivery.tag,))

    def nack(self, delivery: Delivery, *, delay: float = 0.0) -> None:
        """Publish the message again (after ``delay`` seconds, counting its deliveries), then ack it."""
        if not self._release(delivery):
            return
        out = self._resolve(delivery.queue, delivery.body, delay=delay, priority=delivery.priority,
                            headers=delivery.headers, deliveries=delivery.delivery_count)
        self._publish_confirmed([out])
        self._ack(delivery)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Publish the message to ``<queue>.dead`` with ``reason`` in its header, confirmed, then ack it."""
        if not self._release(delivery):
            return
        dead = dead_letter_queue(delivery.queue)
        self.declare([delivery.queue] if not delivery.queue.endswith(".dead") else [])
        headers = {**delivery.headers, REASON_HEADER: reason}
        props = BasicProperties(delivery_mode=2, priority=delivery.priority or None, headers=headers)
        self._publish_confirmed([Resolved("", dead, delivery.body, props)])
        self._ack(delivery)

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Nothing to do: an unacked AMQP delivery is held as long as the connection lives."""

    # ----------------------------------------------------------------- inspecting and stopping

    def depth(self, queue: str) -> QueueDepth:
        """How many messages ``queue`` holds, as far as AMQP lets one client see.

        ``ready``: ready in RabbitMQ plus those prefetched into this client's buffer. ``in_flight``:
        fetched from this client and not settled yet, or -1 when this client consumes nothing (other
        clients' unacked messages are invisible to AMQP). ``delayed``: the messages in this
        exchange's delay queues, for all its queues. ``dead``: ready in ``<queue>.dead``. The counts
        come from (idempotent) declares of these queues rather than passive probes, since probing a
        missing queue closes the channel."""
        self.declare([] if queue.endswith(".dead") else [queue])
        steps = self._queue_steps(queue)
        for bucket in range(DELAY_BUCKETS):
            steps.extend(self._bucket_steps(bucket)[1:2])
        frames = self._admin(steps)
        counts = [getattr(f.method, "message_count", 0) for f in frames]
        if queue.endswith(".dead"):
            ready, dead, delayed = counts[0], 0, sum(counts[1:])
        else:
            ready, dead, delayed = counts[0], counts[2], sum(counts[3:])
        with self._cond:
            ready += sum(1 for item in self._buffer if item[2].queue == queue)
            in_flight = self._held.get(queue, 0) if self._want else -1
        return QueueDepth(queue=queue, ready=ready, delayed=delayed, in_flight=in_flight, dead=dead)

    # ----------------------------------------------------------------- connection hooks

    def _connection_lost(self) -> None:
        """(I/O thread) Deliveries, consumers and declarations of the lost connection are void."""
        self._consumers.clear()
        self._consumer_queue.clear()
        self._reset_acks()
        self._incoming.clear()
        self._declared.clear()
        self._buckets.clear()
        with self._cond:
            self._buffer.clear()
            self._held.clear()

    def _resumed(self) -> None:
        """(I/O thread) Consume again what was consumed before; start the idle-consumer check."""
        if self._want:
            self._sync_consumers()
        if not self._ticking:
            self._ticking = True
            assert self._ioloop is not None
            self._ioloop.call_later(_IDLE_CONSUMER / 4, self._tick)

    def _closing_hook(self) -> None:
        """(I/O thread) Send the acks still waiting before the connection closes."""
        self._take_acks()

    def close(self) -> None:
        """Send pending acks and close the connection; unacked deliveries return to their queues."""
        super().close()
        self.wake()

    def wake(self) -> None:
        """Make a blocked ``fetch`` return now."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()


