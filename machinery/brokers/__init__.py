"""Brokers and ``open_broker``, which picks one by the scheme of ``Config.broker_url``."""

from __future__ import annotations

from typing import cast

from machinery.brokers.base import REASON_HEADER, Broker, Delivery, OutgoingMessage, QueueDepth, dead_letter_queue
from machinery.config import Config
from machinery.schemes import open_by_scheme

__all__ = [
    "REASON_HEADER",
    "Broker",
    "Delivery",
    "OutgoingMessage",
    "QueueDepth",
    "dead_letter_queue",
    "open_broker",
]


#: scheme -> (module, class); imported only when used, so pika stays optional.
_BROKERS = {
    "memory": ("machinery.brokers.memory", "MemoryBroker"),
    "sqlite": ("machinery.brokers.sqlite", "SQLiteBroker"),
    "amqp": ("machinery.brokers.amqp", "AMQPBroker"),
    "amqps": ("machinery.brokers.amqp", "AMQPBroker"),
}


def open_broker(config: Config) -> Broker:
    """The broker ``config.broker_url`` names: ``memory://[name]`` (one shared instance per name in
    this process), ``sqlite:///path``, ``amqp://`` / ``amqps://``. Unknown schemes: ``ConfigError``."""
    expected = "a memory://, sqlite://, amqp:// or amqps:// URL"
    return cast(Broker, open_by_scheme(config, "broker_url", _BROKERS, expected))
