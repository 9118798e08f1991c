"""raw pika, the ceiling the RabbitMQ benchmark compares machinery with: the same bytes machinery
sends, published with pipelined confirms and consumed with manual acks (prefetch 100) by one
``SelectConnection`` driven in this thread; its "one follow-up per task" consumer and its 10-hop
chain publish on a channel in confirm mode, as machinery does, without waiting for the confirms.
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
_PERSISTENT = BasicProperties(delivery_mode=2)


def _body(routing_key: str = "") -> bytes:
    """A no-op task's message as machinery encodes it (``routing_key`` tells two apart, same size)."""
    from machinery import Signature, encode

    return encode(Signature("noop", [], immutable=True, routing_key=routing_key))


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


def _publish(queue: str, n: int, body: bytes) -> float:
    """Declare ``queue`` and publish ``n`` messages with pipelined confirms; messages/s."""
    times: dict[str, float] = {}

    def publish(ch: Channel) -> None:
        acked = [0]

        def on_confirm(frame: Any) -> None:
            method = frame.method
            acked[0] = method.delivery_tag if method.multiple else acked[0] + 1
            if acked[0] >= n:
                times["published"] = time.perf_counter()
                client.finish()

        def declared(_f: Any) -> None:
            times["start"] = time.perf_counter()
            for _ in range(n):
                ch.basic_publish("", queue, body, _PERSISTENT)

        ch.confirm_delivery(on_confirm, callback=lambda _f: ch.queue_declare(queue, durable=True, callback=declared))

    client = _RawPika()
    client.run(publish)
    return n / (times["published"] - times["start"])


def _consume(queue: str, total: int, *, follow_up: tuple[bytes, bytes] | None = None) -> float:
    """Consume ``total`` messages of ``queue`` (prefetch 100, manual acks); messages/s from the
    first to the last. With ``follow_up`` = (body, follow), each message whose body is ``body``
    first publishes ``follow`` (on a channel in confirm mode; nobody waits for the confirm)."""
    times: dict[str, float] = {}

    def consume(ch: Channel) -> None:
        got = [0]

        def on_message(c: Channel, method: Basic.Deliver, _p: BasicProperties, message: bytes) -> None:
            if got[0] == 0:
                times["first"] = time.perf_counter()
            got[0] += 1
            if follow_up is not None and message == follow_up[0]:
                c.basic_publish("", queue, follow_up[1], _PERSISTENT)
            c.basic_ack(method.delivery_tag or 0)
            if got[0] >= total:
                times["last"] = time.perf_counter()
                client.finish()

        def start(_f: object = None) -> None:
            ch.basic_qos(prefetch_count=PREFETCH, callback=lambda _g: ch.basic_consume(queue, on_message))

        if follow_up is not None:
            ch.confirm_delivery(lambda _f: None, callback=start)
        else:
            start()

    client = _RawPika()
    client.run(consume)
    return (total - 1) / (times["last"] - times["first"])


def raw_round(row: Row, n: int) -> None:
    """One round: publish n messages with pipelined confirms, then consume them; both rates go to ``row``."""
    queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    try:
        row.publishes.append(_publish(queue, n, _body()))
        row.processes.append(_consume(queue, n))
    finally:
        delete_declared(queue)


def raw_follow_up_round(row: Row, n: int) -> None:
    """One round: n messages consumed, each publishing one follow-up message (confirm mode, as
    machinery's tasks do) before its ack; the rate counts all 2n consumed."""
    queue = f"bench-raw-f-{uuid.uuid4().hex[:8]}"
    body, follow = _body(), _body("f")
    try:
        _publish(queue, n, body)
        row.processes.append(_consume(queue, 2 * n, follow_up=(body, follow)))
    finally:
        delete_declared(queue)


def raw_chains(count: int, *, confirms: bool, bodies: Sequence[bytes] = ()) -> list[float]:
    """``count`` 10-hop chains, one after another, where each delivery acks itself and publishes the
    next message (with ``confirms``: on a channel in confirm mode, as machinery publishes; nobody
    waits for them); the seconds of each, from the first publish to the 10th delivery. ``bodies``:
    the message of each hop (machinery's chain sends the steps still to run nested in each, so its
    messages shrink hop by hop; RabbitMQ takes longer to move bigger ones); by default a no-op
    task's message at every hop."""
    queue = f"bench-raw-c-{uuid.uuid4().hex[:8]}"
    hop_bodies = list(bodies) or [_body()] * 10
    chains: list[float] = []

    def chain(ch: Channel) -> None:
        hops = [0]
        started = [0.0]

        def start() -> None:
            hops[0] = 0
            started[0] = time.perf_counter()
            ch.basic_publish("", queue, hop_bodies[0], _PERSISTENT)

        def on_message(c: Channel, method: Basic.Deliver, _p: BasicProperties, _b: bytes) -> None:
            c.basic_ack(method.delivery_tag or 0)
            hops[0] += 1
            if hops[0] < len(hop_bodies):
                c.basic_publish("", queue, hop_bodies[hops[0]], _PERSISTENT)
                return
            chains.append(time.perf_counter() - started[0])
            if len(chains) < count:
                start()
            else:
                client.finish()

        def consume(_f: Any = None) -> None:
            ch.queue_declare(queue, durable=True, callback=lambda _d: ch.basic_qos(
                prefetch_count=PREFETCH,
                callback=lambda _q: ch.basic_consume(queue, on_message, callback=lambda _g: start())))

        if confirms:
            ch.confirm_delivery(lambda _f: None, callback=consume)
        else:
            consume()

    client = _RawPika()
    try:
        client.run(chain)
    finally:
        delete_declared(queue)
    return chains
