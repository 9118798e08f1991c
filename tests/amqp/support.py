"""Helpers of the AMQP tests: brokers with names unique to a test, and removing what they declared."""

from __future__ import annotations

import atexit
import threading
import uuid
from collections.abc import Mapping

import pika

from machinery.brokers.amqp import AMQPBroker
from machinery.brokers.amqp_topology import DELAY_BUCKETS, delay_exchange, delay_queue
from machinery.brokers.base import dead_letter_queue

__all__ = ["delete_topology", "forget_at_exit", "new_broker", "unique_name"]

_made: list[tuple[str, str, tuple[str, ...]]] = []
_lock = threading.Lock()


def unique_name(prefix: str = "t") -> str:
    """A name for exchanges and queues that no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def delete_topology(url: str, exchange: str, queues: tuple[str, ...] = ()) -> None:
    """Delete ``exchange``, its delay exchange and queues, and ``queues`` with their dead-letter queues."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        names = [delay_queue(exchange, k) for k in range(DELAY_BUCKETS)]
        for queue in queues:
            names += [queue, dead_letter_queue(queue)]
        for name in names:
            channel.queue_delete(name)
        channel.exchange_delete(delay_exchange(exchange))
        channel.exchange_delete(exchange)
    finally:
        connection.close()


def forget_at_exit(url: str, exchange: str, queues: tuple[str, ...]) -> None:
    """Delete this topology when the test process ends (for fixtures that cannot clean up)."""
    with _lock:
        _made.append((url, exchange, queues))


@atexit.register
def _delete_all() -> None:
    with _lock:
        made = list(_made)
        _made.clear()
    for url, exchange, queues in made:
        try:
            delete_topology(url, exchange, queues)
        except Exception:  # the server may be gone at exit; nothing to report to
            pass


def new_broker(
    url: str, token: str, *, prefetch_count: int = 16, queue_declare_args: Mapping[str, object] | None = None
) -> AMQPBroker:
    """An AMQP broker on exchange ``ex-<token>``; its topology is deleted when the tests end."""
    exchange = f"ex-{token}"
    queue = f"q-{token}"
    forget_at_exit(url, exchange, (queue, f"{queue}-other", f"{queue}-elsewhere"))
    return AMQPBroker(
        url,
        exchange=exchange,
        default_queue=queue,
        binding_key=queue,
        prefetch_count=prefetch_count,
        queue_declare_args=queue_declare_args,
    )
