"""Opening the event channel that goes with a config's broker: a table in the SQLite file, an
exchange on RabbitMQ, in-process for ``memory://``."""

from __future__ import annotations

from machinery.config import Config, masked_url
from machinery.errors import ConfigError
from machinery.events.channel import EventChannel, MemoryEvents

__all__ = ["open_channel"]


def open_channel(config: Config) -> EventChannel:
    """The event channel beside ``config``'s broker."""
    url = config.broker_url
    scheme = url.partition("://")[0]
    if scheme == "memory":
        return MemoryEvents(url.partition("://")[2])
    if scheme == "sqlite":
        from machinery.events.sqlite_channel import SQLiteEvents

        return SQLiteEvents.from_config(config)
    if scheme in ("amqp", "amqps"):
        try:
            from machinery.events.amqp_channel import AMQPEvents
        except ImportError as exc:
            raise ConfigError("broker_url", f"a scheme whose support is installed ({exc})", masked_url(url)) from None
        return AMQPEvents.from_config(config)
    raise ConfigError("broker_url", "a broker with an event channel (sqlite://, amqp://, memory://)", masked_url(url))
