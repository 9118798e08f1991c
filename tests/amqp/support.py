"""Helpers of the AMQP tests: brokers with names unique to a test, and removing what they declared."""

from __future__ import annotations

import atexit
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import pika

from machinery.brokers.amqp import AMQPBroker
from machinery.brokers.amqp_topology import DELAY_BUCKETS, delay_exchange, delay_queue
from machinery.brokers.base import dead_letter_queue
from machinery.config import Config
from tests.conftest import RABBITMQ_URL, require_service

__all__ = [
    "REPO_ROOT",
    "amqp_config",
    "delete_topology",
    "effects",
    "eventually",
    "forget_at_exit",
    "new_broker",
    "unique_name",
    "worker_command",
]

REPO_ROOT = Path(__file__).resolve().parents[2]

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
    require_service("RabbitMQ", "MACHINERY_REQUIRE_RABBITMQ", "127.0.0.1", 5672)
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


def worker_command(*args: str, app_spec: str = "tests.amqp.worker_app:app") -> list[str]:
    """``python -m machinery worker -A app_spec args...`` with this interpreter."""
    return [sys.executable, "-m", "machinery", "--log-level", "WARNING", "worker", "-A", app_spec, *args]


def effects(path: Path) -> list[str]:
    """The keys recorded by ``record`` tasks in the SQLite side channel ``path``, in order."""
    if not path.exists():
        return []
    with sqlite3.connect(path, timeout=30.0) as db:
        try:
            return [row[0] for row in db.execute("SELECT key FROM effects ORDER BY rowid")]
        except sqlite3.OperationalError:
            return []


def eventually(check: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> bool:
    """True once ``check()`` is true, False if it is not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
