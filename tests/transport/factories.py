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

from machinery.brokers.base import Broker
from machinery.brokers.memory import MemoryBroker
from machinery.brokers.sqlite import SQLiteBroker

__all__ = ["BROKER_FACTORIES", "BrokerFactory", "FactoryContext"]


@dataclass(frozen=True, slots=True)
class FactoryContext:
    """What a factory may use: a fresh directory, a token unique to the test (for queue and key
    names on shared servers), the URL of the service it requires, and the timeouts under test."""

    tmp_path: Path
    token: str
    service_url: str | None = None
    visibility_timeout: float = 30.0
    expires_in: float = 3600.0


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


def _memory_broker(ctx: FactoryContext) -> Broker:
    return MemoryBroker.named(f"contract-{ctx.token}", visibility_timeout=ctx.visibility_timeout)


def _sqlite_broker(ctx: FactoryContext) -> Broker:
    return SQLiteBroker(str(ctx.tmp_path / "broker.sqlite3"), visibility_timeout=ctx.visibility_timeout)


BROKER_FACTORIES: dict[str, BrokerFactory] = {
    "memory": BrokerFactory(_memory_broker),
    "sqlite": BrokerFactory(_sqlite_broker),
}
