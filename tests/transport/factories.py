"""The brokers and result backends the transport contract suites run against.

A new broker joins the broker contract suite by adding a :class:`BrokerFactory` to
``BROKER_FACTORIES`` (likewise ``BACKEND_FACTORIES`` for result backends). ``make`` is called once
or several times per test with the same :class:`FactoryContext`; every call must return a client
of the same store (a second consumer, a second process's view), isolated from other tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from machinery.backends.base import ResultBackend
from machinery.backends.memory import MemoryBackend
from machinery.backends.redis import RedisBackend
from machinery.backends.redis_go import GoRedisBackend
from machinery.backends.sqlite import SQLiteBackend
from machinery.brokers.base import Broker
from machinery.brokers.memory import MemoryBroker
from machinery.brokers.sqlite import SQLiteBroker
from tests.support.amqp import new_broker

__all__ = ["BACKEND_FACTORIES", "BROKER_FACTORIES", "BackendFactory", "BrokerFactory", "FactoryContext"]


@dataclass(frozen=True, slots=True)
class FactoryContext:
    """What a factory may use: a fresh directory, a token unique to the test (for queue and key
    names on shared servers), the URL of the service it requires, and the timeouts under test."""

    tmp_path: Path
    token: str
    service_url: str | None = None
    visibility_timeout: float = 30.0
    expires_in: float = 3600.0
    poll_interval: float = 0.5
    """How often a waiting backend reads the store when nothing wakes it (where it polls)."""


def _nothing(broker: Broker) -> None:
    """A consumer that vanishes without closing: its leases simply expire."""


@dataclass(frozen=True, slots=True)
class BrokerFactory:
    """How to build one kind of broker for the contract suite."""

    make: Callable[[FactoryContext], Broker]
    requires: str | None = None
    """The name of the fixture giving ``service_url`` (e.g. "rabbitmq_url"), or None."""
    abandon: Callable[[Broker], None] = _nothing
    """Make a consumer disappear as a killed process would (its deliveries must come back)."""


@dataclass(frozen=True, slots=True)
class BackendFactory:
    """How to build one kind of result backend for the contract suite."""

    make: Callable[[FactoryContext], ResultBackend]
    requires: str | None = None
    """The name of the fixture giving ``service_url`` (e.g. "redis_url"), or None."""
    repeats_complete_groups: bool = True
    """Whether a complete group's results come again until ``group_done`` (Go's layout gives them once)."""


def _memory_broker(ctx: FactoryContext) -> Broker:
    return MemoryBroker.named(f"contract-{ctx.token}", visibility_timeout=ctx.visibility_timeout)


def _sqlite_broker(ctx: FactoryContext) -> Broker:
    return SQLiteBroker(str(ctx.tmp_path / "broker.sqlite3"), visibility_timeout=ctx.visibility_timeout)


def _amqp_broker(ctx: FactoryContext) -> Broker:
    assert ctx.service_url is not None
    return new_broker(ctx.service_url, ctx.token)


def _amqp_broker_public_pika(ctx: FactoryContext) -> Broker:
    """The AMQP broker on pika's public API only (``fast_path=False``: as where pika's internals
    are not what the fast path expects)."""
    assert ctx.service_url is not None
    return new_broker(ctx.service_url, ctx.token, fast_path=False)


def _close(broker: Broker) -> None:
    """An AMQP consumer whose connection is gone: RabbitMQ gives its unacked deliveries back."""
    broker.close()


def _memory_backend(ctx: FactoryContext) -> ResultBackend:
    return MemoryBackend.named(f"contract-{ctx.token}", expires_in=ctx.expires_in)


def _sqlite_backend(ctx: FactoryContext) -> ResultBackend:
    return SQLiteBackend(str(ctx.tmp_path / "results.sqlite3"), expires_in=ctx.expires_in,
                         poll_interval=ctx.poll_interval)


def _redis_backend(ctx: FactoryContext) -> ResultBackend:
    assert ctx.service_url is not None
    return RedisBackend(ctx.service_url, expires_in=ctx.expires_in, prefix=f"machinery-test:{ctx.token}:",
                        poll_interval=ctx.poll_interval)


def _redis_go_backend(ctx: FactoryContext) -> ResultBackend:
    assert ctx.service_url is not None
    return GoRedisBackend(ctx.service_url, expires_in=ctx.expires_in, key_prefix=f"machinery-test:{ctx.token}:",
                          poll_interval=ctx.poll_interval)


BROKER_FACTORIES: dict[str, BrokerFactory] = {
    "memory": BrokerFactory(_memory_broker),
    "sqlite": BrokerFactory(_sqlite_broker),
    "amqp": BrokerFactory(_amqp_broker, requires="rabbitmq_url", abandon=_close),
    "amqp-public-pika": BrokerFactory(_amqp_broker_public_pika, requires="rabbitmq_url", abandon=_close),
}

BACKEND_FACTORIES: dict[str, BackendFactory] = {
    "memory": BackendFactory(_memory_backend),
    "sqlite": BackendFactory(_sqlite_backend),
    "redis": BackendFactory(_redis_backend, requires="redis_url"),
    "redis-go": BackendFactory(_redis_go_backend, requires="redis_url", repeats_complete_groups=False),
}
