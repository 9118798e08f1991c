"""The AMQP broker's dead letters: ``<queue>.dead`` read, requeued and purged on a short-lived
blocking connection of their own (these are operator commands, not the hot path).

Listing *browses*: it takes each message of the dead-letter queue with ``basic.get`` without
acknowledging it, then closes the channel, so RabbitMQ puts them all back in their places; the count
read first bounds the loop (messages dead-lettered meanwhile wait for the next listing). Requeueing
publishes the chosen messages to their original queue through the broker (persistent, confirmed),
and only then acknowledges them in the dead-letter queue: never lost, but not atomic - if the
process dies between the confirm and the ack, the message is in both queues (run once more, as
at-least-once delivery allows). Purging is RabbitMQ's ``queue.purge`` of the dead-letter queue.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import pika
import pika.exceptions

from machinery.brokers.base import OutgoingMessage, dead_letter_queue
from machinery.brokers.dead_letters import DEAD_ID_HEADER, DeadMessage, live_headers
from machinery.errors import BrokerError

if TYPE_CHECKING:
    from pika.adapters.blocking_connection import BlockingChannel

__all__ = ["AMQPDeadLetters"]

T = TypeVar("T")

_Publish = Callable[[Sequence[OutgoingMessage]], None]


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class AMQPDeadLetters:
    """Dead letters of an AMQP broker's queues. ``params`` gives the connection parameters of the
    server to use now (with TLS, and the next server of a list after a failure); ``declare`` makes
    sure a queue and its ``.dead`` queue exist; ``publish`` is the broker's confirmed ``publish_many``."""

    def __init__(self, params: Callable[[], pika.URLParameters], safe_url: str, *,
                 declare: Callable[[Sequence[str]], None], publish: _Publish) -> None:
        self._params = params
        self._safe_url = safe_url
        self._declare = declare
        self._publish = publish

    @contextmanager
    def _channel(self, queue: str) -> Iterator[BlockingChannel]:
        """A channel on a new connection, closed (its unacked messages given back) on leaving."""
        self._declare([queue])
        try:
            connection = pika.BlockingConnection(self._params())
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise BrokerError(f"dead letters: cannot reach RabbitMQ at {self._safe_url} ({exc!r})") from None
        try:
            yield connection.channel()
        except pika.exceptions.AMQPError as exc:
            raise BrokerError(f"dead letters of {queue!r} at {self._safe_url}: {exc!r}") from None
        finally:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                pass

    @staticmethod
    def _browse(channel: BlockingChannel, queue: str) -> Iterator[tuple[int, DeadMessage]]:
        """Each message of ``<queue>.dead`` with its delivery tag, left unacknowledged."""
        dead = dead_letter_queue(queue)
        count = channel.queue_declare(dead, passive=True).method.message_count
        for _ in range(count):
            method, props, body = channel.basic_get(dead, auto_ack=False)
            if method is None or props is None or body is None:
                return
            raw = props.headers or {}
            headers = {k: _text(v) for k, v in raw.items() if isinstance(k, str)}
            dead_id = headers.get(DEAD_ID_HEADER) or hashlib.sha1(body).hexdigest()[:16]
            assert method.delivery_tag is not None
            yield method.delivery_tag, DeadMessage.from_headers(dead_id, queue, body, headers,
                                                                priority=props.priority or 0)

    def browse(self, queue: str, limit: int | None = None) -> list[DeadMessage]:
        """The dead letters of ``queue`` in queue order (browsed: they all stay in place)."""
        out: list[DeadMessage] = []
        with self._channel(queue) as channel:
            for _, message in self._browse(channel, queue):
                out.append(message)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def requeue(self, queue: str, ids: Sequence[str] | None = None) -> list[str]:
        """Publish the chosen dead letters to ``queue`` (confirmed), then ack them in ``.dead``."""
        with self._channel(queue) as channel:
            chosen = [(tag, m) for tag, m in self._browse(channel, queue) if ids is None or m.id in ids]
            if not chosen:
                return []
            self._publish([OutgoingMessage(queue, m.body, priority=m.priority, headers=live_headers(m.headers))
                           for _, m in chosen])
            for tag, _ in chosen:
                channel.basic_ack(tag)
            return [m.id for _, m in chosen]

    def purge(self, queue: str) -> int:
        """Empty ``<queue>.dead``; returns how many messages it held."""
        with self._channel(queue) as channel:
            return channel.queue_purge(dead_letter_queue(queue)).method.message_count or 0
