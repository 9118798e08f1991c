"""The AMQP broker's RabbitMQ topology: names, routing keys, header names, delay buckets, and
``Topology``, which declares it and says where each message is published.

The rules, in one place:

- Tasks go through the configured exchange (a type of ``EXCHANGE_TYPES``). The default queue is
  bound with ``binding_key`` and a message for it is published with routing key ``binding_key``;
  any other destination queue is declared on first use and bound with its own name as key, and a
  message for it is published with that name as routing key.
- ``<queue>.dead`` sits beside each queue; dead letters reach it through the default exchange.
- Delays are held by RabbitMQ in TTL queues ``<exchange>.delay.<k>`` (one per power-of-two number of
  milliseconds ``2**k``, ``k`` below ``DELAY_BUCKETS``), fed by a headers exchange ``<exchange>.delay``
  on the ``machinery-delay-bucket`` header. An expired message dead-letters into the default exchange
  with the routing key it was published with, the name of its destination queue, so it returns to
  exactly that queue whatever the main exchange's type. The due time travels in the
  ``machinery-due`` header; a consumer that receives a message early delays it again for the rest.
- With ``go_delays`` (``wire_format: go``, not on a fanout exchange), a delayed task is held in Go
  Machinery v1's own delay queues instead (``amqp_delays``): one TTL per queue, so it never leaves
  early, since a Go worker would run it at once. ``nack`` delays keep the buckets above (a given-back
  message has no ETA to honour).
- Every message carries ``content_type: application/json``, as Go Machinery's does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pika.spec import BasicProperties

from machinery.brokers.amqp_confirms import Resolved
from machinery.brokers.amqp_delays import MIN_QUEUE_MS, Step, delay_ms, go_delay_queue, go_delay_steps
from machinery.brokers.amqp_publish_frames import CONTENT_TYPE, PERSISTENT
from machinery.brokers.base import dead_letter_queue
from machinery.config import EXCHANGE_TYPES
from machinery.errors import BrokerError

if TYPE_CHECKING:
    from machinery.brokers.amqp_connection import AMQPConnection

__all__ = [
    "EXCHANGE_TYPES",
    "Step",
    "Topology",
    "DELAY_BUCKETS",
    "DELIVERIES_HEADER",
    "DUE_HEADER",
    "BUCKET_HEADER",
    "INTERNAL_HEADERS",
    "bucket_for",
    "delay_exchange",
    "delay_queue",
]

#: Number of delay queues at most: bucket ``k`` holds messages for ``2**k`` ms (up to ~24.9 days).
DELAY_BUCKETS = 32
#: Header with the due time of a delayed message, milliseconds since the Unix epoch.
DUE_HEADER = "machinery-due"
#: Header that routes a delayed message to its bucket's queue (headers exchanges ignore ``x-`` keys).
BUCKET_HEADER = "machinery-delay-bucket"
#: Header with how many deliveries a message had before it was published again on ``nack``.
DELIVERIES_HEADER = "machinery-deliveries"
#: Headers used by this broker or RabbitMQ that are not passed to consumers.
INTERNAL_HEADERS = frozenset(
    {DUE_HEADER, BUCKET_HEADER, DELIVERIES_HEADER, "x-death", "x-delivery-count", "x-first-death-exchange",
     "x-first-death-queue", "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue",
     "x-last-death-reason"}
)


def delay_exchange(exchange: str) -> str:
    """The headers exchange that feeds the delay queues of ``exchange``."""
    return f"{exchange}.delay"


def delay_queue(exchange: str, bucket: int) -> str:
    """The TTL queue that holds messages for ``2**bucket`` milliseconds."""
    return f"{exchange}.delay.{bucket}"


def bucket_for(remaining_ms: float) -> int:
    """The largest bucket whose wait does not pass ``remaining_ms`` (at least bucket 0, 1 ms).

    A message waits in this bucket, comes back early by less than the bucket's own length, and is
    delayed again for the rest: at most about ``log2`` of its delay hops, never too early."""
    if remaining_ms < 2:
        return 0
    return min(DELAY_BUCKETS - 1, math.floor(math.log2(remaining_ms)))


#: RabbitMQ's headers that tell where a dead-lettered message has been (dropped when it is delayed again).
_DEATH_HEADERS = ("x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
                  "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason")


class Topology:
    """The exchange, queues and delay queues of one broker, declared on first use through
    ``connection``'s declaring channel, and where each message goes."""

    def __init__(
        self,
        connection: AMQPConnection,
        *,
        exchange: str,
        exchange_type: str,
        default_queue: str,
        binding_key: str,
        queue_declare_args: Mapping[str, object] | None,
        go_delays: bool = False,
    ) -> None:
        if exchange_type not in EXCHANGE_TYPES:
            raise BrokerError(f"exchange_type must be one of {', '.join(EXCHANGE_TYPES)}, got {exchange_type!r}")
        self._connection = connection
        self.exchange = exchange
        self.exchange_type = exchange_type
        self.default_queue = default_queue
        self.binding_key = binding_key
        self._queue_args: dict[str, object] = dict(queue_declare_args or {})
        dead_type = self._queue_args.get("x-queue-type")
        self._dead_args: dict[str, object] = {"x-queue-type": dead_type} if dead_type is not None else {}
        self._declared: set[str] = set()
        self._buckets: set[int] = set()
        self.go_delays = go_delays and exchange_type != "fanout"

    def routing_key(self, queue: str) -> str:
        """The routing key that reaches ``queue`` through the exchange."""
        return self.binding_key if queue == self.default_queue else queue

    # ----------------------------------------------------------------- declaring

    def declare(self, queues: Sequence[str]) -> None:
        """Declare the exchange, ``queues`` bound to it and their dead-letter queues (once each)."""
        missing = [q for q in queues if q not in self._declared]
        if not missing:
            return
        steps: list[Step] = [
            lambda ch, cb: ch.exchange_declare(self.exchange, self.exchange_type, durable=True, callback=cb)
        ]
        for queue in missing:
            steps.extend(self.queue_steps(queue))
        self._connection.declaring.call(steps)
        self._declared.update(missing)

    def queue_steps(self, queue: str) -> list[Step]:
        """Declare ``queue``, bind it, declare its dead-letter queue (a ``.dead`` queue: itself only)."""
        if queue.endswith(".dead"):
            return [lambda ch, cb: ch.queue_declare(queue, durable=True, arguments=self._dead_args, callback=cb)]
        dead = dead_letter_queue(queue)
        key = self.routing_key(queue)
        return [
            lambda ch, cb: ch.queue_declare(queue, durable=True, arguments=self._queue_args, callback=cb),
            lambda ch, cb: ch.queue_bind(queue, self.exchange, key, callback=cb),
            lambda ch, cb: ch.queue_declare(dead, durable=True, arguments=self._dead_args, callback=cb),
        ]

    def bucket_steps(self, bucket: int) -> list[Step]:
        """Declare the delay exchange, the TTL queue of ``bucket`` and its binding (queue second)."""
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
            self._connection.declaring.call(self.bucket_steps(bucket))
            self._buckets.add(bucket)

    def ensure_bucket_then(self, bucket: int, then: Callable[[str | None], None]) -> None:
        """(I/O thread) Declare ``bucket``'s queue unless it was, then call ``then`` (with the error, if any)."""
        if bucket in self._buckets:
            then(None)
            return

        def declared(error: str | None) -> None:
            if error is None:
                self._buckets.add(bucket)
            then(error)

        self._connection.declaring.run_steps(self.bucket_steps(bucket), declared, [])

    def lost(self) -> None:
        """(I/O thread) The connection is gone: declare again on the next one."""
        self._declared.clear()
        self._buckets.clear()

    # ----------------------------------------------------------------- where messages go

    def resolve(
        self,
        queue: str,
        body: bytes,
        *,
        delay: float,
        priority: int,
        headers: Mapping[str, str],
        deliveries: int | None,
    ) -> Resolved:
        """Where and how a message for ``queue`` is published: a delayed one to its bucket (declared
        here, blocking), a republished one (``deliveries`` counted) through the default exchange."""
        if delay <= 0 and not headers and not priority and deliveries is None:
            return Resolved(self.exchange, self.routing_key(queue), body, PERSISTENT)
        h: dict[str, str | int] = dict(headers)
        if deliveries is not None:
            h[DELIVERIES_HEADER] = deliveries
        if delay > 0 and self.go_delays and deliveries is None:
            return self._go_delayed(queue, body, delay, priority, h)
        if delay > 0:
            remaining_ms = delay * 1000.0
            h[DUE_HEADER] = int(time.time() * 1000.0 + remaining_ms + 0.999)
            bucket = bucket_for(remaining_ms)
            self._ensure_bucket(bucket)
            h[BUCKET_HEADER] = str(bucket)
            props = BasicProperties(delivery_mode=2, priority=priority or None, headers=h, content_type=CONTENT_TYPE)
            return Resolved(delay_exchange(self.exchange), queue, body, props)
        props = BasicProperties(delivery_mode=2, priority=priority or None, headers=h or None,
                                content_type=CONTENT_TYPE)
        if deliveries is not None:
            return Resolved("", queue, body, props)
        return Resolved(self.exchange, self.routing_key(queue), body, props)

    def _go_delayed(
        self, queue: str, body: bytes, delay: float, priority: int, headers: dict[str, str | int]
    ) -> Resolved:
        """A delayed message in Go Machinery v1's delay queue for its delay (declared again here,
        blocking), or, for a delay too short for one, straight to its queue once the delay has passed."""
        key = self.routing_key(queue)
        ms = delay_ms(delay)
        props = BasicProperties(delivery_mode=2, priority=priority or None, headers=headers or None,
                                content_type=CONTENT_TYPE)
        if ms < MIN_QUEUE_MS:
            time.sleep(ms / 1000.0)
            return Resolved(self.exchange, key, body, props)
        steps = go_delay_steps(self.exchange, key, ms)
        self._connection.declaring.call(steps)
        # Declared again once RabbitMQ confirmed the message: however long the publish took after
        # this declare, the queue then outlives the message's time-to-live.
        return Resolved(self.exchange, go_delay_queue(self.exchange, key, ms), body, props, then=steps)

    def delayed_again(
        self, queue: str, body: bytes, *, priority: int, raw: Mapping[Any, object], due: int
    ) -> tuple[int, Resolved]:
        """The bucket and publish for a delayed message that came back before ``due`` (its headers
        ``raw`` kept but for RabbitMQ's dead-letter record)."""
        bucket = bucket_for(due - time.time() * 1000.0)
        headers: dict[str, Any] = {k: v for k, v in raw.items() if isinstance(k, str) and k not in _DEATH_HEADERS}
        headers[BUCKET_HEADER] = str(bucket)
        props = BasicProperties(delivery_mode=2, priority=priority or None, headers=headers, content_type=CONTENT_TYPE)
        return bucket, Resolved(delay_exchange(self.exchange), queue, body, props)

    def dead_letter(self, queue: str, body: bytes, *, priority: int, headers: Mapping[str, str]) -> Resolved:
        """The publish of a message to ``<queue>.dead`` (``headers`` say why: ``dead_letter_headers``)."""
        props = BasicProperties(delivery_mode=2, priority=priority or None, headers=dict(headers),
                                content_type=CONTENT_TYPE)
        return Resolved("", dead_letter_queue(queue), body, props)
