"""Go Machinery v1's delay queues, used by the AMQP broker when ``wire_format`` is ``"go"``.

A message due in ``ms`` milliseconds is published through the task exchange to its own queue
``delay.<ms>.<exchange>.<routing key>``, bound to that exchange by its own name and declared with
``x-message-ttl = ms`` (every message in it waits exactly that long), ``x-dead-letter-exchange`` =
the exchange and ``x-dead-letter-routing-key`` = the routing key of its destination queue, and
``x-expires = 2 * ms``. It is declared again before every publish, which restarts its expiry timer,
as Go's broker does; the arguments equal Go's, so either language may declare it first. Unlike
Go's broker, this one declares it once more after RabbitMQ confirmed the message: a queue expires
``2 * ms`` after its last declare even with a message inside, so a publish that reached the queue
more than ``ms`` after the declare (a loaded machine) would otherwise vanish with it.

With one TTL per queue a message can never leave before its time, so no consumer of either
language (Go's worker does not look at ``ETA``) ever receives a task early. A delay too short for
a declare and a publish to fit safely inside the queue's expiry (``MIN_QUEUE_MS``) is waited out by
the publisher instead, which then publishes the message straight to its queue.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pika.channel import Channel

if TYPE_CHECKING:
    from pika.frame import Method

__all__ = ["MIN_QUEUE_MS", "delay_ms", "go_delay_queue", "go_delay_steps"]

#: Shortest delay, in milliseconds, that gets a delay queue: a queue expires ``2 * ms`` after it was
#: declared, so a declare-then-publish must fit in ``ms`` with room to spare.
MIN_QUEUE_MS = 50

#: One RPC on the declaring channel: called with the channel and the callback for its reply.
Step = Callable[[Channel, Callable[["Method[Any]"], None]], None]


def delay_ms(delay: float) -> int:
    """``delay`` seconds as whole milliseconds, rounded up (never early)."""
    return max(0, math.ceil(delay * 1000.0 - 1e-6))


def go_delay_queue(exchange: str, routing_key: str, ms: int) -> str:
    """The name Go Machinery v1 gives the queue that holds a message for ``routing_key`` ``ms`` milliseconds."""
    return f"delay.{ms}.{exchange}.{routing_key}"


def go_delay_steps(exchange: str, routing_key: str, ms: int) -> list[Step]:
    """Declare (again) and bind the delay queue for ``routing_key`` and ``ms``, with Go's arguments."""
    name = go_delay_queue(exchange, routing_key, ms)
    args = {
        "x-dead-letter-exchange": exchange,
        "x-dead-letter-routing-key": routing_key,
        "x-message-ttl": ms,
        "x-expires": ms * 2,
    }
    return [
        lambda ch, cb: ch.queue_declare(name, durable=True, arguments=args, callback=cb),
        lambda ch, cb: ch.queue_bind(name, exchange, name, callback=cb),
    ]
