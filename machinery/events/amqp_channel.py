"""Events on RabbitMQ: a topic exchange ``<exchange>.events`` (not durable, messages transient),
routing key the event type with dots (``task.succeeded``, ``worker.heartbeat``).

Each subscriber declares its own exclusive, auto-deleted queue bound with ``#``, so it sees the
events published while it is subscribed, and RabbitMQ keeps none once it leaves. The channel uses
its own pika ``BlockingConnection`` per publisher and per subscriber, apart from the broker's.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from machinery.config import Config, masked_url
from machinery.errors import BrokerError
from machinery.events.channel import EventSubscription
from machinery.events.model import Event, encode_event

__all__ = ["AMQPEvents", "events_exchange"]

_TRANSIENT = pika.BasicProperties(delivery_mode=1, content_type="application/json")


def events_exchange(config: Config) -> str:
    """The events exchange beside ``config.exchange``."""
    return f"{config.exchange}.events"


def _parameters(url: str) -> pika.URLParameters:
    try:
        params = pika.URLParameters(url)
    except ValueError as exc:
        raise BrokerError(f"bad AMQP URL {masked_url(url)}: {type(exc).__name__}") from None
    if urlsplit(url).scheme.lower() == "amqps":
        params.ssl_options = pika.SSLOptions(ssl.create_default_context(), server_hostname=params.host)
    params.connection_attempts = 1
    params.socket_timeout = 5.0
    params.blocked_connection_timeout = 10.0
    return params


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _open(params: pika.URLParameters, exchange: str, url: str) -> tuple[pika.BlockingConnection, BlockingChannel]:
    try:
        connection = pika.BlockingConnection(params)
        channel = connection.channel()
        channel.exchange_declare(exchange, "topic", durable=False, auto_delete=False)
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise BrokerError(f"events: cannot reach RabbitMQ at {url} ({_reason(exc)})") from None
    return connection, channel


class _Subscription:
    def __init__(self, params: pika.URLParameters, exchange: str, url: str) -> None:
        self._connection, self._channel = _open(params, exchange, url)
        self._received: list[bytes] = []
        try:
            declared = self._channel.queue_declare("", exclusive=True, auto_delete=True)
            queue = declared.method.queue
            self._channel.queue_bind(queue, exchange, routing_key="#")
            self._channel.basic_consume(queue, self._on_message, auto_ack=True)
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise BrokerError(f"events: cannot subscribe at {url} ({_reason(exc)})") from None

    def _on_message(self, channel: BlockingChannel, method: object, properties: object, body: bytes) -> None:
        self._received.append(body)

    def read(self, timeout: float) -> list[bytes]:
        deadline = time.monotonic() + timeout
        try:
            while not self._received:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._connection.process_data_events(time_limit=min(left, 0.1))
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise BrokerError(f"events: lost the connection to RabbitMQ ({_reason(exc)})") from None
        out, self._received = self._received, []
        return out

    def close(self) -> None:
        try:
            if self._connection.is_open:
                self._connection.close()
        except (pika.exceptions.AMQPError, OSError):
            pass


class AMQPEvents:
    """The event channel beside an AMQP broker."""

    def __init__(self, url: str, exchange: str) -> None:
        self._params = _parameters(url)
        self._url = masked_url(url)
        self.exchange = exchange
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    @classmethod
    def from_config(cls, config: Config) -> AMQPEvents:
        return cls(config.broker_url, events_exchange(config))

    def publish(self, events: Sequence[Event]) -> None:
        with self._lock:
            if self._channel is None or self._connection is None or not self._connection.is_open:
                self._connection, self._channel = _open(self._params, self.exchange, self._url)
            channel = self._channel
            try:
                for event in events:
                    channel.basic_publish(self.exchange, event.type.replace("-", "."), encode_event(event), _TRANSIENT)
            except (pika.exceptions.AMQPError, OSError) as exc:
                self._drop()
                raise BrokerError(f"events: publishing to {self._url} failed ({_reason(exc)})") from None

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                if connection.is_open:
                    connection.close()
            except (pika.exceptions.AMQPError, OSError):
                pass

    def subscribe(self, history: float = 0.0) -> EventSubscription:
        return _Subscription(self._params, self.exchange, self._url)

    def close(self) -> None:
        with self._lock:
            self._drop()
