"""raw pika, the ceiling the RabbitMQ benchmark compares machinery with: the frames machinery sends
(its message bytes, through a direct exchange bound to the queue, persistent, ``content_type``
application/json, ``mandatory``), published with pipelined confirms and consumed with manual acks
(prefetch 100) by one ``SelectConnection`` driven in this thread; its "one follow-up per task"
consumer and its 10-hop chain publish on a channel in confirm mode, as machinery does, without
waiting for the confirms (they ack first: a crash between the ack and the publish loses the task).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pika
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from benchmarks.amqp_common import AMQP_URL, Row, delete_declared

__all__ = ["raw_chains", "raw_follow_up_round", "raw_round"]

PREFETCH = 100
#: The properties machinery publishes with.
_PROPERTIES = BasicProperties(delivery_mode=2, content_type="application/json")


def _body(routing_key: str = "") -> bytes:
    """A no-op task's message as machinery encodes it (``routing_key`` tells two apart, same size)."""
    from machinery import Signature, encode

    return encode(Signature("noop", [], immutable=True, routing_key=routing_key))


class _Route:
    """A queue of this run with a direct exchange bound to it (as machinery declares its default
    queue): declared on creation, deleted by ``delete``."""

    def __init__(self, prefix: str) -> None:
        self.queue = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.exchange = f"{self.queue}-ex"
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        channel = connection.channel()
        channel.exchange_declare(self.exchange, "direct", durable=True)
        channel.queue_declare(self.queue, durable=True)
        channel.queue_bind(self.queue, self.exchange, self.queue)
        connection.close()

    def publish(self, channel: Channel, body: bytes) -> None:
        channel.basic_publish(self.exchange, self.queue, body, _PROPERTIES, mandatory=True)

    def delete(self) -> None:
        delete_declared(self.queue, exchanges=(self.exchange,))


class _RawPika:
    """One SelectConnection driven to completion in this thread for one measurement."""

    def __init__(self) -> None:
        self.connection = SelectConnection(
            pika.URLParameters(AMQP_URL),
            on_open_callback=self._opened,
            on_close_callback=lambda _c, _e: self.connection.ioloop.stop(),
        )
        self.on_channel: Callable[[Channel], None] = lambda ch: None

    def _opened(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self._channel_opened)

    def _channel_opened(self, channel: Channel) -> None:
        self.on_channel(channel)

    def run(self, on_channel: Callable[[Channel], None]) -> None:
        self.on_channel = on_channel
        self.connection.ioloop.start()

    def finish(self) -> None:
        """Close cleanly (pending acks are flushed first); the loop stops once it is closed."""
        self.connection.close()


def _publish(route: _Route, n: int, body: bytes) -> float:
    """Publish ``n`` messages with pipelined confirms; messages/s."""
    times: dict[str, float] = {}

    def publish(ch: Channel) -> None:
        acked = [0]

        def on_confirm(frame: Any) -> None:
            method = frame.method
            acked[0] = method.delivery_tag if method.multiple else acked[0] + 1
            if acked[0] >= n:
                times["published"] = time.perf_counter()
                client.finish()

        def confirming(_f: Any) -> None:
            times["start"] = time.perf_counter()
            for _ in range(n):
                route.publish(ch, body)

        ch.confirm_delivery(on_confirm, callback=confirming)

    client = _RawPika()
    client.run(publish)
    return n / (times["published"] - times["start"])


def _consume(route: _Route, total: int, *, follow_up: tuple[bytes, bytes] | None = None) -> float:
    """Consume ``total`` messages (prefetch 100, manual acks); messages/s from the first to the
    last. With ``follow_up`` = (body, follow), each message whose body is ``body`` first publishes
    ``follow`` (on a channel in confirm mode; nobody waits for the confirm)."""
    times: dict[str, float] = {}

    def consume(ch: Channel) -> None:
        got = [0]

        def on_message(c: Channel, method: Basic.Deliver, _p: BasicProperties, message: bytes) -> None:
            if got[0] == 0:
                times["first"] = time.perf_counter()
            got[0] += 1
            if follow_up is not None and message == follow_up[0]:
                route.publish(c, follow_up[1])
            c.basic_ack(method.delivery_tag or 0)
            if got[0] >= total:
                times["last"] = time.perf_counter()
                client.finish()

        def start(_f: object = None) -> None:
            ch.basic_qos(prefetch_count=PREFETCH, callback=lambda _g: ch.basic_consume(route.queue, on_message))

        if follow_up is not None:
            ch.confirm_delivery(lambda _f: None, callback=start)
        else:
            start()

    client = _RawPika()
    client.run(consume)
    return (total - 1) / (times["last"] - times["first"])


def raw_round(row: Row, n: int) -> None:
    """One round: publish n messages with pipelined confirms, then consume them; both rates go to ``row``."""
    route = _Route("bench-raw")
    try:
        row.publishes.append(_publish(route, n, _body()))
        row.processes.append(_consume(route, n))
    finally:
        route.delete()


def raw_follow_up_round(row: Row, n: int) -> None:
    """One round: n messages consumed, each publishing one follow-up message (confirm mode, as
    machinery's tasks do) before its ack; the rate counts all 2n consumed."""
    route = _Route("bench-raw-f")
    body, follow = _body(), _body("f")
    try:
        _publish(route, n, body)
        row.processes.append(_consume(route, 2 * n, follow_up=(body, follow)))
    finally:
        route.delete()


def raw_chains(count: int, *, confirms: bool, bodies: Sequence[bytes] = ()) -> list[float]:
    """``count`` 10-hop chains, one after another, where each delivery acks itself and publishes the
    next message (with ``confirms``: on a channel in confirm mode, as machinery publishes; nobody
    waits for them); the seconds of each, from the first publish to the 10th delivery. ``bodies``:
    the message of each hop (machinery's chain sends the steps still to run nested in each, so its
    messages shrink hop by hop; RabbitMQ takes longer to move bigger ones); by default a no-op
    task's message at every hop."""
    route = _Route("bench-raw-c")
    hop_bodies = list(bodies) or [_body()] * 10
    chains: list[float] = []

    def chain(ch: Channel) -> None:
        hops = [0]
        started = [0.0]

        def start() -> None:
            hops[0] = 0
            started[0] = time.perf_counter()
            route.publish(ch, hop_bodies[0])

        def on_message(c: Channel, method: Basic.Deliver, _p: BasicProperties, _b: bytes) -> None:
            c.basic_ack(method.delivery_tag or 0)
            hops[0] += 1
            if hops[0] < len(hop_bodies):
                route.publish(c, hop_bodies[hops[0]])
                return
            chains.append(time.perf_counter() - started[0])
            if len(chains) < count:
                start()
            else:
                client.finish()

        def consume(_f: Any = None) -> None:
            ch.basic_qos(prefetch_count=PREFETCH,
                         callback=lambda _q: ch.basic_consume(route.queue, on_message, callback=lambda _g: start()))

        if confirms:
            ch.confirm_delivery(lambda _f: None, callback=consume)
        else:
            consume()

    client = _RawPika()
    try:
        client.run(chain)
    finally:
        route.delete()
    return chains
