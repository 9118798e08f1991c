"""Brokers and ``open_broker``, which picks one by the scheme of ``Config.broker_url``."""

from __future__ import annotations

import importlib
from typing import Protocol, cast

from machinery.brokers.base import REASON_HEADER, Broker, Delivery, OutgoingMessage, QueueDepth, dead_letter_queue
from machinery.config import Config
from machinery.errors import ConfigError
from machinery.urls import masked_url

__all__ = [
    "REASON_HEADER",
    "Broker",
    "Delivery",
    "OutgoingMessage",
    "QueueDepth",
    "dead_letter_queue",
    "open_broker",
]


class _BrokerClass(Protocol):
    def from_config(self, config: Config, /) -> Broker: ...


#: scheme -> (module, class); imported only when used, so pika stays optional.
_BROKERS = {
    "sqlite": ("machinery.brokers.sqlite", "SQLiteBroker"),
    "amqp": ("machinery.brokers.amqp", "AMQPBroker"),
    "amqps": ("machinery.brokers.amqp", "AMQPBroker"),
}


def open_broker(config: Config) -> Broker:
    """The broker ``config.broker_url`` names: ``memory://[name]`` (one shared instance per name in
    this process), ``sqlite:///path``, ``amqp://`` / ``amqps://``. Unknown schemes: ``ConfigError``."""
    url = config.broker_url
    scheme, _, rest = url.partition("://")
    if scheme == "memory":
        from machinery.brokers.memory import MemoryBroker

        return MemoryBroker.named(rest, visibility_timeout=config.visibility_timeout)
    target = _BROKERS.get(scheme)
    if target is None:
        raise ConfigError("broker_url", "a memory://, sqlite://, amqp:// or amqps:// URL", masked_url(url))
    module_name, class_name = target
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("broker_url", f"a broker whose support is installed ({exc})", masked_url(url)) from None
    cls = cast(_BrokerClass, getattr(module, class_name))
    return cls.from_config(config)
