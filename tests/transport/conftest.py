"""Fixtures of the transport suites: a broker (or backend) builder per registered kind."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from machinery.brokers.base import Broker
from tests.transport.factories import BROKER_FACTORIES, BrokerFactory, FactoryContext

MakeBroker = Callable[..., Broker]


@pytest.fixture
def token() -> str:
    """A name part unique to this test (queues and keys on shared servers)."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def queue(token: str) -> str:
    return f"q-{token}"


@pytest.fixture(params=sorted(BROKER_FACTORIES))
def broker_factory(request: pytest.FixtureRequest) -> BrokerFactory:
    """Each registered broker kind in turn."""
    return BROKER_FACTORIES[str(request.param)]


@pytest.fixture
def make_broker(
    broker_factory: BrokerFactory, request: pytest.FixtureRequest, tmp_path: Path, token: str
) -> Iterator[MakeBroker]:
    """``make_broker(visibility_timeout=30.0)``: a new client of this test's broker, closed at the end."""
    service_url = str(request.getfixturevalue(broker_factory.requires)) if broker_factory.requires else None
    made: list[Broker] = []

    def make(visibility_timeout: float = 30.0) -> Broker:
        ctx = FactoryContext(tmp_path, token, service_url, visibility_timeout=visibility_timeout)
        broker = broker_factory.make(ctx)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()
