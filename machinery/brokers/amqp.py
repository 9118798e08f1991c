"""The AMQP broker: RabbitMQ through pika, with publisher confirms, dead letters, delays held by
RabbitMQ and reconnection.

``AMQPBroker`` implements the ``Broker`` protocol with parts it owns, one module each:

- ``connection`` (``amqp_connection``): the I/O thread, its channels, publishing with confirms
  (``amqp_confirms``) and declaring RPCs (``connection.declaring``, ``amqp_declaring``); the pika
  internals of its fast path are all in ``_pika_fastpath``;
- ``topology`` (``amqp_topology``): what is declared and where each message is published;
- ``consumers`` (``amqp_consuming``): which queues are consumed, and each delivery read into a
  ``Delivery``;
- ``buffer`` (``amqp_buffer``): the deliveries waiting for ``fetch``;
- ``acks`` (``amqp_acks``): acks from any thread, coalesced on the I/O thread.

A delivery's path: the I/O thread reads it (``_pika_fastpath.FastPathConnection`` or pika), the
consumers turn it into a ``Delivery`` in the buffer, ``fetch`` takes it, and ``ack`` queues its tag
for the ack coalescer, which sends it with the next ``multiple`` ack.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from machinery.brokers.amqp_acks import AckCoalescer
from machinery.brokers.amqp_buffer import DeliveryBuffer
from machinery.brokers.amqp_connection import AMQPConnection
from machinery.brokers.amqp_consuming import Consumers
from machinery.brokers.amqp_dead_letters import AMQPDeadLetters
from machinery.brokers.amqp_topology import DELAY_BUCKETS, Topology
from machinery.brokers.base import PUBLISHED, Broker, Delivery, OutgoingMessage, PendingPublish, QueueDepth
from machinery.brokers.dead_letters import DEAD_ID_HEADER, DeadMessage, dead_letter_headers
from machinery.jsonvalues import thaw
from machinery.tls import TLSSettings

if TYPE_CHECKING:
    from machinery._speedups import Delivered
    from machinery.config import Config

__all__ = ["AMQPBroker"]


class AMQPBroker(Broker):
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
        fast_path: bool = True,
        tls: TLSSettings | None = None,
        go_delays: bool = False,
    ) -> None:
        self.connection = AMQPConnection(
            url, prefetch_count=prefetch_count, connect_attempts=connect_attempts, publish_retries=publish_retries,
            timeout=timeout, fast_path=fast_path, on_deliveries=self._on_deliveries, on_lost=self._connection_lost,
            on_resumed=self._resumed, on_closing=self._closing, tls=tls,
        )
        self.topology = Topology(self.connection, exchange=exchange, exchange_type=exchange_type,
                                 default_queue=default_queue, binding_key=binding_key,
                                 queue_declare_args=queue_declare_args, go_delays=go_delays)
        self.buffer = DeliveryBuffer()
        self.acks = AckCoalescer(self.connection)
        self.consumers = Consumers(self.connection, self.topology, self.buffer, self.acks)
        self.dead = AMQPDeadLetters(lambda: self.connection.servers.current, self.connection.safe_url,
                                    declare=self.topology.declare, publish=self.publish_many)

    @classmethod
    def from_config(cls, config: Config) -> AMQPBroker:
        """The broker that ``config`` describes (URL, exchange, queues, prefetch, queue arguments,
        fast path, Go's delay queues in Go mode)."""
        args = thaw(config.queue_declare_args)
        return cls(
            config.broker_url,
            exchange=config.exchange,
            exchange_type=config.exchange_type,
            default_queue=config.default_queue,
            binding_key=config.binding_key,
            prefetch_count=config.prefetch_count,
            queue_declare_args=args if isinstance(args, dict) else None,
            fast_path=config.amqp_fast_path,
            tls=TLSSettings.from_config(config),
            go_delays=config.wire_format == "go",
        )

    def __repr__(self) -> str:
        return (f"AMQPBroker({self.connection.safe_url!r}, exchange={self.exchange!r}, "
                f"default_queue={self.default_queue!r})")

    @property
    def exchange(self) -> str:
        return self.topology.exchange

    @property
    def default_queue(self) -> str:
        return self.topology.default_queue

    def routing_key(self, queue: str) -> str:
        """The routing key that reaches ``queue`` through the exchange (see ``amqp_topology``)."""
        return self.topology.routing_key(queue)

    def declare(self, queues: Sequence[str]) -> None:
        """Declare the exchange, ``queues`` bound to it and their dead-letter queues."""
        self.topology.declare(queues)

    # ----------------------------------------------------------------- publishing

    def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish all ``messages`` persistent, then wait for all their confirms (pipelined, not one
        by one). ``publish`` (inherited from ``Broker``) publishes one this way."""
        self.publish_begin(messages).wait()

    def publish_begin(self, messages: Sequence[OutgoingMessage]) -> PendingPublish:
        """Send all ``messages`` persistent now; the handle's ``wait`` awaits their confirms (a
        worker's task thread moves on while its settler waits for them before the ack)."""
        if not messages:
            return PUBLISHED
        topology = self.topology
        topology.declare(sorted({m.queue for m in messages}))
        outs = [topology.resolve(m.queue, m.body, delay=m.delay, priority=m.priority, headers=m.headers,
                                 deliveries=None) for m in messages]
        return self.connection.publish_begin(outs)

    # ----------------------------------------------------------------- consuming

    def fetch(self, queues: Sequence[str], max_messages: int, timeout: float) -> list[Delivery]:
        """Up to ``max_messages`` buffered deliveries from ``queues``, waiting up to ``timeout``.

        The first fetch of a queue subscribes to it and lingers a moment (``amqp_consuming.LINGER``)
        so that what the queue already holds arrives and is ordered by priority across the queues. A
        queue not fetched for ``amqp_consuming.IDLE_CONSUMER`` seconds is unsubscribed and its
        buffered messages given back."""
        deadline = time.monotonic() + timeout
        consumers = self.consumers
        consumers.subscribe(queues, deadline)
        out = self.buffer.take(frozenset(queues), max_messages, deadline, consumers.wanted)
        consumers.touch(queues)
        return out

    # ----------------------------------------------------------------- settling

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge ``delivery`` (sent soon, coalesced with others; never blocks)."""
        self.ack_many((delivery,))

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge all ``deliveries`` as ``ack`` does each, with one hand-off to the I/O thread."""
        if not deliveries:
            return
        tags = self.buffer.settled(deliveries, self.connection.generation)
        if tags:
            self.acks.ack(tags)

    def nack(self, delivery: Delivery, *, delay: float = 0.0) -> None:
        """Publish the message again (after ``delay`` seconds, counting its deliveries), then ack it."""
        if not self.buffer.settled((delivery,), self.connection.generation):
            return
        out = self.topology.resolve(delivery.queue, delivery.body, delay=delay, priority=delivery.priority,
                                    headers=delivery.headers, deliveries=delivery.delivery_count)
        self.connection.publish([out])
        self.acks.ack((delivery.tag,))

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Publish the message to ``<queue>.dead`` with ``reason`` in its header, confirmed, then ack it."""
        if not self.buffer.settled((delivery,), self.connection.generation):
            return
        topology = self.topology
        topology.declare([delivery.queue] if not delivery.queue.endswith(".dead") else [])
        headers = {**dead_letter_headers(delivery, reason), DEAD_ID_HEADER: secrets.token_hex(8)}
        out = topology.dead_letter(delivery.queue, delivery.body, priority=delivery.priority, headers=headers)
        self.connection.publish([out])
        self.acks.ack((delivery.tag,))

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Nothing to do: an unacked AMQP delivery is held as long as the connection lives."""

    # ----------------------------------------------------------------- dead letters (``amqp_dead_letters``)

    def dead_letters(self, queue: str, limit: int | None = None) -> list[DeadMessage]:
        """The dead letters of ``queue``, browsed (they stay in ``<queue>.dead``)."""
        return self.dead.browse(queue, limit)

    def requeue_dead(self, queue: str, ids: Sequence[str] | None = None) -> list[str]:
        """Publish dead letters to ``queue`` again (confirmed), then ack them (not atomic: see
        ``amqp_dead_letters``)."""
        return self.dead.requeue(queue, ids)

    def purge_dead(self, queue: str) -> int:
        """Empty ``<queue>.dead``."""
        return self.dead.purge(queue)

    # ----------------------------------------------------------------- inspecting and stopping

    def depth(self, queue: str) -> QueueDepth:
        """How many messages ``queue`` holds, as far as AMQP lets one client see.

        ``ready``: ready in RabbitMQ plus those prefetched into this client's buffer. ``in_flight``:
        fetched from this client and not settled yet, or -1 when this client consumes nothing (other
        clients' unacked messages are invisible to AMQP). ``delayed``: the messages in this
        exchange's delay queues, for all its queues. ``dead``: ready in ``<queue>.dead``. The counts
        come from (idempotent) declares of these queues rather than passive probes, since probing a
        missing queue closes the channel."""
        topology = self.topology
        topology.declare([] if queue.endswith(".dead") else [queue])
        steps = topology.queue_steps(queue)
        for bucket in range(DELAY_BUCKETS):
            steps.extend(topology.bucket_steps(bucket)[1:2])
        frames = self.connection.declaring.call(steps)
        counts = [getattr(f.method, "message_count", 0) for f in frames]
        if queue.endswith(".dead"):
            ready, dead, delayed = counts[0], 0, sum(counts[1:])
        else:
            ready, dead, delayed = counts[0], counts[2], sum(counts[3:])
        ready += self.buffer.ready(queue)
        in_flight = self.buffer.in_flight(queue) if self.consumers.wanted else -1
        return QueueDepth(queue=queue, ready=ready, delayed=delayed, in_flight=in_flight, dead=dead)

    def close(self) -> None:
        """Send pending acks and close the connection; unacked deliveries return to their queues."""
        self.connection.close()
        self.wake()

    def wake(self) -> None:
        """Make a blocked ``fetch`` return now."""
        self.buffer.wake()

    def on_arrival(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` on the I/O thread whenever deliveries reach the buffer while no
        ``fetch`` waits for them."""
        self.buffer.on_arrival.append(callback)
        return True

    # ----------------------------------------------------------------- the connection's callbacks

    def _on_deliveries(self, batch: list[Delivered]) -> None:
        """(I/O thread) Deliveries read by the fast path's frame scanner."""
        self.consumers.on_deliveries(batch)

    def _connection_lost(self) -> None:
        """(I/O thread) Deliveries, consumers and declarations of the lost connection are void."""
        self.consumers.lost()
        self.acks.lost()
        self.buffer.lost()
        self.topology.lost()

    def _resumed(self) -> None:
        """(I/O thread) Consume again what was consumed before."""
        self.consumers.resumed()

    def _closing(self) -> None:
        """(I/O thread) Send the acks still waiting before the connection closes."""
        self.acks.send()
