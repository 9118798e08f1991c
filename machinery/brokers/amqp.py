"""The AMQP broker: RabbitMQ through pika, with publisher confirms, dead letters, delays held by
RabbitMQ and reconnection.

One background thread owns a pika ``SelectConnection`` and its three channels (publishing in
confirm mode, consuming with QoS prefetch, declaring). Heartbeats flow while tasks run for minutes
on other threads. Every call from another thread is marshalled onto that thread; deliveries wait in a
local buffer that ``fetch`` drains. The topology rules are in ``amqp_topology``.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pika
from pika.adapters.select_connection import IOLoop
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from machinery.brokers.amqp_topology import (
    BUCKET_HEADER,
    DELAY_BUCKETS,
    DELIVERIES_HEADER,
    DUE_HEADER,
    INTERNAL_HEADERS,
    bucket_for,
    delay_exchange,
    delay_queue,
    mask_url,
)
from machinery.brokers.base import REASON_HEADER, Delivery, OutgoingMessage, QueueDepth, dead_letter_queue
from machinery.errors import BrokerError
from machinery.jsonvalues import thaw

if TYPE_CHECKING:
    from pika.frame import Method

    from machinery.config import Config

__all__ = ["AMQPBroker"]

log = logging.getLogger(__name__)

_TAG_BITS = 48
_TAG_MASK = (1 << _TAG_BITS) - 1
_EMPTY: Mapping[str, str] = {}
_PERSISTENT = BasicProperties(delivery_mode=2)
_EXCHANGE_TYPES = ("direct", "topic", "fanout")
_LINGER = 0.05

#: One RPC on the declaring channel: called with the channel and the callback for its reply.
_Step = Callable[[Channel, Callable[["Method[Any]"], None]], None]


class _Waiter:
    """Publishes waiting for RabbitMQ's confirms; settled on the I/O thread, awaited on another."""

    __slots__ = ("cancelled", "error", "event", "lost", "remaining")

    def __init__(self, count: int) -> None:
        self.event = threading.Event()
        self.remaining = count
        self.error: str | None = None
        self.lost: list[int] = []
        self.cancelled = False
        if count == 0:
            self.event.set()

    def settle(self, index: int, error: str | None, lost: bool) -> None:
        if lost:
            self.lost.append(index)
        elif error is not None and self.error is None:
            self.error = error
        self.remaining -= 1
        if self.remaining <= 0:
            self.event.set()


class _Then(_Waiter):
    """A single internal publish whose outcome runs a callback on the I/O thread."""

    __slots__ = ("then",)

    def __init__(self, then: Callable[[bool], None]) -> None:
        super().__init__(1)
        self.then = then

    def settle(self, index: int, error: str | None, lost: bool) -> None:
        super().settle(index, error, lost)
        self.then(error is None and not lost)


class _Out:
    """A message resolved to where it is published and with which properties."""

    __slots__ = ("body", "exchange", "properties", "routing_key")

    def __init__(self, exchange: str, routing_key: str, body: bytes, properties: BasicProperties) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.properties = properties


class AMQPBroker:
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
    ) -> None:
        if exchange_type not in _EXCHANGE_TYPES:
            raise BrokerError(f"exchange_type must be one of {', '.join(_EXCHANGE_TYPES)}, got {exchange_type!r}")
        self._safe_url = mask_url(url)
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("amqp", "amqps"):
            raise BrokerError(f"not an AMQP URL: {self._safe_url}")
        try:
            params = pika.URLParameters(url)
        except ValueError as exc:
            raise BrokerError(f"bad AMQP URL {self._safe_url}: {type(exc).__name__}") from None
        if scheme == "amqps":
            params.ssl_options = pika.SSLOptions(ssl.create_default_context(), server_hostname=params.host)
        params.connection_attempts = 1
        self._params = params
        self.exchange = exchange
        self.exchange_type = exchange_type
        self.default_queue = default_queue
        self.binding_key = binding_key
        self.prefetch_count = prefetch_count
        self._queue_args: dict[str, object] = dict(queue_declare_args or {})
        dead_type = self._queue_args.get("x-queue-type")
        self._dead_args: dict[str, object] = {"x-queue-type": dead_type} if dead_type is not None else {}
        self._connect_attempts = connect_attempts
        self._publish_retries = publish_retries
        self._timeout = timeout

        # Shared with other threads.
        self._lock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._buffer: list[tuple[int, int, Delivery]] = []
        self._seq = itertools.count()
        self._woken = False
        self._ops: deque[Callable[[], None]] = deque()
        self._admin_ops: deque[Callable[[], None]] = deque()
        self._acks: list[int] = []
        self._held: dict[str, int] = {}
        self._ack_scheduled = False
        self._declared: set[str] = set()
        self._buckets: set[int] = set()
        self._want: frozenset[str] = frozenset()
        self._thread: threading.Thread | None = None
        self._ioloop: IOLoop | None = None
        self._closing = False
        self._failures = 0
        self._last_error = ""
        self._gen = 0

        # Owned by the I/O thread.
        self._conn: pika.SelectConnection | None = None
        self._pub: Channel | None = None
        self._con: Channel | None = None
        self._adm: Channel | None = None
        self._ready = False
        self._pub_ok = False
        self._con_ok = False
        self._pub_seq = 0
        self._unconfirmed: dict[int, tuple[_Waiter, int, _Out]] = {}
        self._returned: dict[int, str] = {}
        self._consumers: dict[str, str] = {}
        self._consumer_queue: dict[str, str] = {}
        self._admin_pending: list[Callable[[str | None], None]] = []
        self._floor = 0
        self._done: set[int] = set()
        self._acked_above: set[int] = set()

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
        steps: list[_Step] = [
            lambda ch, cb: ch.exchange_declare(self.exchange, self.exchange_type, durable=True, callback=cb)
        ]
        for queue in missing:
            steps.extend(self._queue_steps(queue))
        self._admin(steps)
        self._declared.update(missing)

    def _queue_steps(self, queue: str) -> list[_Step]:
        if queue.endswith(".dead"):
            return [lambda ch, cb: ch.queue_declare(queue, durable=True, arguments=self._dead_args, callback=cb)]
        dead = dead_letter_queue(queue)
        key = self.routing_key(queue)
        return [
            lambda ch, cb: ch.queue_declare(queue, durable=True, arguments=self._queue_args, callback=cb),
            lambda ch, cb: ch.queue_bind(queue, self.exchange, key, callback=cb),
            lambda ch, cb: ch.queue_declare(dead, durable=True, arguments=self._dead_args, callback=cb),
        ]

    def _bucket_steps(self, bucket: int) -> list[_Step]:
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
    ) -> _Out:
        """Where and how a message for ``queue`` is published; a delayed one goes to its bucket."""
        if delay <= 0 and not headers and not priority and deliveries is None:
            return _Out(self.exchange, self.routing_key(queue), body, _PERSISTENT)
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
            return _Out(delay_exchange(self.exchange), queue, body, props)
        props = BasicProperties(delivery_mode=2, priority=priority or None, headers=h or None)
        if deliveries is not None:
            return _Out("", queue, body, props)
        return _Out(self.exchange, self.routing_key(queue), body, props)

    def _publish_confirmed(self, outs: list[_Out]) -> None:
        """Publish ``outs`` on the I/O thread and wait for their confirms, retrying the ones lost with
        a dropped connection a bounded number of times."""
        self._start()
        deadline = time.monotonic() + self._timeout
        for attempt in range(self._publish_retries + 1):
            waiter = _Waiter(len(outs))
            self._submit(functools.partial(self._publish_now, outs, waiter))
            while not waiter.event.wait(0.05):
                if self._failures >= self._connect_attempts or time.monotonic() > deadline:
                    waiter.cancelled = True
                    why = self._last_error or "no confirm in time"
                    raise BrokerError(f"could not publish to {self._safe_url}: {why}")
            if waiter.error is not None:
                raise BrokerError(waiter.error)
            if not waiter.lost:
                return
            outs = [outs[i] for i in sorted(waiter.lost)]
            log.warning("connection lost before %d confirms; publishing them again", len(outs))
            time.sleep(min(2.0, 0.05 * 2**attempt))
        raise BrokerError(f"could not publish to {self._safe_url}: connection lost {self._publish_retries + 1} times")

    def _publish_now(self, outs: Sequence[_Out], waiter: _Waiter) -> None:
        """(I/O thread) Send ``outs`` on the confirm channel and remember them until confirmed."""
        if waiter.cancelled:
            return
        pub = self._pub
        assert pub is not None
        publish = pub.basic_publish
        pending = self._unconfirmed
        seq = self._pub_seq
        for index, out in enumerate(outs):
            publish(out.exchange, out.routing_key, out.body, out.properties, True)
            seq += 1
            pending[seq] = (waiter, index, out)
        self._pub_seq = seq

    def _on_confirm(self, frame: Method[Basic.Ack | Basic.Nack]) -> None:
        """(I/O thread) Settle every publish that this ack or nack covers."""
        method = frame.method
        tag = method.delivery_tag
        nack = isinstance(method, Basic.Nack)
        pending = self._unconfirmed
        if method.multiple:
            tags: list[int] = []
            for seq in pending:
                if seq > tag:
                    break
                tags.append(seq)
        else:
            tags = [tag] if tag in pending else []
        for seq in tags:
            waiter, index, out = pending.pop(seq)
            returned = self._returned.pop(seq, None) if self._returned else None
            if nack:
                waiter.settle(index, f"RabbitMQ refused a message for {out.routing_key!r} (nack)", False)
            elif returned is not None:
                waiter.settle(index, returned, False)
            else:
                waiter.settle(index, None, False)

    def _on_return(self, _ch: Channel, method: Basic.Return, _props: BasicProperties, body: bytes) -> None:
        """(I/O thread) Mark an unroutable publish; its confirm follows and fails its waiter."""
        for seq, (_w, _i, out) in self._unconfirmed.items():
            if (seq not in self._returned and out.routing_key == method.routing_key
                    and out.exchange == method.exchange and out.body == body):
                self._returned[seq] = (
                    f"unroutable: exchange {method.exchange!r} has no queue for routing key "
                    f"{method.routing_key!r} ({method.reply_text})"
                )
                return

    # ----------------------------------------------------------------- consuming

    def fetch(self, queues: Sequence[str], max_messages: int, timeout: float) -> list[Delivery]:
        """Up to ``max_messages`` buffered deliveries from ``queues``, waiting up to ``timeout``.

        The first fetch of a new set of queues subscribes to them and then lingers a moment
        (``_LINGER``) so that what the queues already hold arrives and is ordered by priority
        across them."""
        wanted = frozenset(queues)
        deadline = time.monotonic() + timeout
        if wanted != self._want:
            self.declare(sorted(wanted))
            self._want = wanted
            subscribed = threading.Event()
            self._submit(functools.partial(self._sync_consumers, subscribed.set))
            subscribed.wait(max(0.0, min(timeout, self._timeout)))
            time.sleep(min(_LINGER, max(0.0, deadline - time.monotonic())))
        out: list[Delivery] = []
        aside: list[tuple[int, int, Delivery]] = []
        with self._cond:
            while not self._buffer and not self._woken:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._woken = False
            buffer = self._buffer
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
        return out

    def _release(self, delivery: Delivery) -> bool:
        """Count ``delivery`` as settled here; False when it came from a lost connection."""
        with self._cond:
            if delivery.tag >> _TAG_BITS != self._gen:
                log.warning("dropping the settlement of a delivery from a lost connection "
                            "(RabbitMQ delivers it again)")
                return False
            self._held[delivery.queue] = self._held.get(delivery.queue, 1) - 1
        return True

    def _sync_consumers(self, subscribed: Callable[[], None] | None = None) -> None:
        """(I/O thread) Consume exactly the wanted queues; give back what was buffered for others.
        ``subscribed`` is called once RabbitMQ confirmed every new consumer."""
        con = self._con
        assert con is not None
        want = self._want
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

    def _give_back(self, queue: str) -> None:
        """(I/O thread) Requeue the buffered deliveries of a queue no longer consumed."""
        with self._cond:
            keep = [item for item in self._buffer if item[2].queue != queue]
            drop = [item[2] for item in self._buffer if item[2].queue == queue]
            heapq.heapify(keep)
            self._buffer = keep
        for delivery in drop:
            if self._con is not None:
                tag = delivery.tag & _TAG_MASK
                self._con.basic_reject(tag, requeue=True)
                self._acked_above.add(tag)

    def _on_message(self, ch: Channel, method: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
        """(I/O thread) Buffer one delivery, or delay again a delayed message that came back early."""
        if ch is not self._con:
            return
        tag = method.delivery_tag or 0
        queue = self._consumer_queue.get(method.consumer_tag or "")
        if queue is None:
            ch.basic_reject(tag, requeue=True)
            self._acked_above.add(tag)
            return
        raw = props.headers
        headers: Mapping[str, str] = _EMPTY
        count = 2 if method.redelivered else 1
        if raw:
            due = raw.get(DUE_HEADER)
            if isinstance(due, int) and due > time.time() * 1000.0:
                self._redelay(queue, tag, props, body, due)
                return
            before = raw.get(DELIVERIES_HEADER)
            if isinstance(before, int):
                count += before
            quorum = raw.get("x-delivery-count")
            if isinstance(quorum, int):
                count = max(count, (before if isinstance(before, int) else 0) + quorum + 1)
            headers = {
                k: (v if isinstance(v, str) else v.decode("utf-8", "replace"))
                for k, v in raw.items()
                if isinstance(v, str | bytes) and k not in INTERNAL_HEADERS
            }
        priority = props.priority or 0
        delivery = Delivery(queue, body, (self._gen << _TAG_BITS) | tag, count, priority, headers)
        with self._cond:
            heapq.heappush(self._buffer, (-priority, next(self._seq), delivery))
            self._cond.notify()

    def _redelay(self, queue: str, tag: int, props: BasicProperties, body: bytes, due: int) -> None:
        """(I/O thread) Put an early message into the bucket for the rest of its wait, then ack it."""
        bucket = bucket_for(due - time.time() * 1000.0)
        headers = dict(props.headers or {})
        headers[BUCKET_HEADER] = str(bucket)
        for key in ("x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
                    "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"):
            headers.pop(key, None)
        out = _Out(delay_exchange(self.exchange), queue, body,
                   BasicProperties(delivery_mode=2, priority=props.priority, headers=headers))
        gen = self._gen

        def publish() -> None:
            self._publish_now([out], _Then(lambda ok: self._settle_local(gen, tag, ok)))

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

    # ----------------------------------------------------------------- settling

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge ``delivery`` (sent soon, coalesced with others; never blocks)."""
        if not self._release(delivery):
            return
        self._ack(delivery)

    def _ack(self, delivery: Delivery) -> None:
        with self._lock:
            self._acks.append(delivery.tag)
            if self._ack_scheduled:
                return
            self._ack_scheduled = True
        self._submit(self._take_acks)

    def _take_acks(self) -> None:
        """(I/O thread) Move acks from task threads into the settled set and send them."""
        with self._lock:
            acks, self._acks = self._acks, []
            self._ack_scheduled = False
        gen = self._gen
        for full in acks:
            tag = full & _TAG_MASK
            if full >> _TAG_BITS != gen:
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
        if con is None or not self._done:
            return
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
        self._publish_confirmed([_Out("", dead, delivery.body, props)])
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

    def wake(self) -> None:
        """Make a blocked ``fetch`` return now."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def close(self) -> None:
        """Send pending acks and close the connection; unacked deliveries return to their queues."""
        thread = self._thread
        if thread is None or self._closing:
            return
        self._closing = True
        ioloop = self._ioloop
        assert ioloop is not None
        ioloop.add_callback_threadsafe(self._shutdown)
        thread.join(10.0)
        self.wake()

    def _shutdown(self) -> None:
        """(I/O thread) Flush acks, close the connection, stop the loop."""
        self._take_acks()
        conn = self._conn
        if conn is not None and conn.is_open:
            conn.close()
        elif self._ioloop is not None:
            self._ioloop.stop()

    # ----------------------------------------------------------------- the I/O thread

    def _start(self) -> None:
        """Start the I/O thread on first use."""
        if self._thread is not None:
            return
        with self._lock:
            if self._started():
                return
            if self._closing:
                raise BrokerError("the AMQP broker is closed")
            self._ioloop = IOLoop()
            self._ioloop.add_callback_threadsafe(self._connect)
            thread = threading.Thread(target=self._ioloop.start, name="machinery-amqp-io", daemon=True)
            thread.start()
            self._thread = thread

    def _started(self) -> bool:
        return self._thread is not None

    def _submit(self, op: Callable[[], None]) -> None:
        """Run ``op`` on the I/O thread as soon as its channels are open."""
        self._start()
        self._ops.append(op)
        ioloop = self._ioloop
        assert ioloop is not None
        ioloop.add_callback_threadsafe(self._drain_ops)

    def _drain_ops(self) -> None:
        ops = self._ops
        while self._ready and ops:
            op = ops.popleft()
            try:
                op()
            except Exception:
                log.exception("AMQP operation failed")

    def _admin(self, steps: list[_Step]) -> list[Method[Any]]:
        """Run declaring RPCs in order on the I/O thread's declaring channel and wait for their replies."""
        self._start()
        done = threading.Event()
        result: list[Method[Any]] = []
        errors: list[str] = []

        def finish(error: str | None) -> None:
            if error is not None:
                errors.append(error)
            done.set()

        self._admin_ops.append(lambda: self._run_steps(steps, finish, result))
        ioloop = self._ioloop
        assert ioloop is not None
        ioloop.add_callback_threadsafe(self._drain_admin)
        deadline = time.monotonic() + self._timeout
        while not done.wait(0.05):
            if self._failures >= self._connect_attempts or time.monotonic() > deadline:
                raise BrokerError(f"could not declare on {self._safe_url}: {self._last_error or 'no reply in time'}")
        if errors:
            raise BrokerError(errors[0])
        return result

    def _drain_admin(self) -> None:
        ops = self._admin_ops
        while self._adm is not None and self._adm.is_open and ops:
            ops.popleft()()

    def _run_steps(self, steps: list[_Step], finish: Callable[[str | None], None], result: list[Method[Any]]) -> None:
        """(I/O thread) Chain ``steps`` through their reply callbacks; ``finish`` gets the first error."""
        adm = self._adm
        if not steps:
            finish(None)
            return
        if adm is None or not adm.is_open:
            self._admin_ops.append(lambda: self._run_steps(steps, finish, result))
            return
        self._admin_pending.append(finish)

        def reply(frame: Method[Any]) -> None:
            if finish in self._admin_pending:
                self._admin_pending.remove(finish)
            result.append(frame)
            self._run_steps(steps[1:], finish, result)

        steps[0](adm, reply)

    def _connect(self) -> None:
        """(I/O thread) Open a connection; its callbacks open the channels or schedule a retry."""
        if self._closing:
            assert self._ioloop is not None
            self._ioloop.stop()
            return
        self._conn = pika.SelectConnection(
            self._params,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
            custom_ioloop=self._ioloop,
        )

    def _on_open(self, conn: pika.SelectConnection) -> None:
        conn.channel(on_open_callback=self._on_pub_open)
        conn.channel(on_open_callback=self._on_con_open)
        conn.channel(on_open_callback=self._on_adm_open)

    def _on_open_error(self, _conn: pika.SelectConnection, exc: BaseException) -> None:
        self._failures += 1
        self._last_error = self._scrub(f"cannot connect ({type(exc).__name__}: {exc})")
        self._retry_later()

    def _scrub(self, text: str) -> str:
        """``text`` with the password, if any, masked."""
        password = getattr(self._params.credentials, "password", "")
        return text.replace(password, "***") if isinstance(password, str) and len(password) > 2 else text

    def _retry_later(self) -> None:
        backoff = min(5.0, 0.1 * 2 ** min(self._failures, 6))
        log.warning("AMQP connection to %s unavailable (%s); retrying in %.1fs", self._safe_url,
                    self._last_error, backoff)
        assert self._ioloop is not None
        self._ioloop.call_later(backoff, self._connect)

    def _on_closed(self, _conn: pika.SelectConnection, exc: BaseException) -> None:
        """(I/O thread) The connection is gone: void its deliveries and confirms, then reconnect."""
        self._ready = self._pub_ok = self._con_ok = False
        self._pub = self._con = self._adm = None
        self._gen += 1
        self._consumers.clear()
        self._consumer_queue.clear()
        self._floor = 0
        self._done.clear()
        self._acked_above.clear()
        self._declared.clear()
        self._buckets.clear()
        with self._cond:
            self._buffer.clear()
            self._held.clear()
        pending, self._unconfirmed = self._unconfirmed, {}
        self._returned.clear()
        self._pub_seq = 0
        for waiter, index, _out in pending.values():
            waiter.settle(index, None, True)
        failed, self._admin_pending = self._admin_pending, []
        for finish in failed:
            finish(f"connection lost: {exc}")
        if self._closing:
            assert self._ioloop is not None
            self._ioloop.stop()
            return
        self._last_error = f"connection lost ({type(exc).__name__})"
        log.warning("AMQP connection to %s lost: %s", self._safe_url, exc)
        self._retry_later()

    def _on_pub_open(self, ch: Channel) -> None:
        self._pub = ch
        ch.add_on_close_callback(self._on_channel_closed)
        ch.add_on_return_callback(self._on_return)
        ch.confirm_delivery(self._on_confirm, callback=lambda _f: self._check_ready(pub=True))

    def _on_con_open(self, ch: Channel) -> None:
        self._con = ch
        ch.add_on_close_callback(self._on_channel_closed)
        ch.basic_qos(prefetch_count=self.prefetch_count, callback=lambda _f: self._check_ready(con=True))

    def _on_adm_open(self, ch: Channel) -> None:
        self._adm = ch
        ch.add_on_close_callback(self._on_adm_closed)
        self._drain_admin()

    def _check_ready(self, *, pub: bool = False, con: bool = False) -> None:
        """(I/O thread) Once publishing and consuming channels are set up, resume consumers and ops."""
        self._pub_ok = self._pub_ok or pub
        self._con_ok = self._con_ok or con
        if self._ready or not (self._pub_ok and self._con_ok):
            return
        self._ready = True
        self._failures = 0
        self._last_error = ""
        if self._want:
            self._sync_consumers()
        self._drain_ops()

    def _on_channel_closed(self, ch: Channel, exc: Exception) -> None:
        """(I/O thread) A publishing or consuming channel closed under us: start over."""
        conn = self._conn
        if conn is not None and conn.is_open and not self._closing:
            log.error("AMQP channel %s closed (%s); reconnecting", ch.channel_number, exc)
            conn.close(320, "channel closed")

    def _on_adm_closed(self, ch: Channel, exc: Exception) -> None:
        """(I/O thread) A declare failed (or a passive one found nothing): report it, reopen."""
        self._adm = None
        failed, self._admin_pending = self._admin_pending, []
        for finish in failed:
            finish(f"declare failed: {exc}")
        conn = self._conn
        if conn is not None and conn.is_open and not self._closing:
            conn.channel(on_open_callback=self._on_adm_open)
