"""AMQP brokers and configs for tests, on an exchange and queues unique to the test, and removing
what they declared when the tests end."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Mapping
from pathlib import Path

import pika

from machinery.brokers.amqp import AMQPBroker
from machinery.brokers.amqp_topology import DELAY_BUCKETS, delay_exchange, delay_queue
from machinery.brokers.base import dead_letter_queue
from machinery.config import Config
from tests.support.names import unique_name
from tests.support.services import RABBITMQ_URL, require_rabbitmq

__all__ = ["amqp_config", "delete_topology", "forget_at_exit", "new_broker"]

_made: list[tuple[str, str, tuple[str, ...]]] = []
_lock = threading.Lock()


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
    url: str, token: str, *, prefetch_count: int = 16, queue_declare_args: Mapping[str, object] | None = None,
    fast_path: bool = True,
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
        fast_path=fast_path,
    )


def amqp_config(tmp: Path, url: str = RABBITMQ_URL) -> Config:
    """A Config on RabbitMQ with an exchange and queue unique to the test (deleted when the tests
    end) and SQLite results in ``tmp``; skips (or fails under CI) when RabbitMQ is not there."""
    require_rabbitmq()
    exchange, queue = unique_name("ex"), unique_name("tasks")
    forget_at_exit(url, exchange, (queue,))
    return Config(
        broker_url=url,
        result_backend=f"sqlite:///{tmp / 'results.sqlite3'}",
        exchange=exchange,
        default_queue=queue,
        binding_key=queue,
        visibility_timeout=5.0,
    )
