"""Fixtures of the transport suites: a broker (or backend) builder per registered kind."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from machinery.backends.base import ResultBackend
from machinery.brokers.base import Broker
from tests.transport.factories import (
    BACKEND_FACTORIES,
    BROKER_FACTORIES,
    BackendFactory,
    BrokerFactory,
    FactoryContext,
)

MakeBroker = Callable[..., Broker]
MakeBackend = Callable[..., ResultBackend]


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


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
def backend_factory(request: pytest.FixtureRequest) -> BackendFactory:
    """Each registered result backend kind in turn."""
    return BACKEND_FACTORIES[str(request.param)]


@pytest.fixture
def make_backend(
    backend_factory: BackendFactory, request: pytest.FixtureRequest, tmp_path: Path, token: str
) -> Iterator[MakeBackend]:
    """``make_backend(expires_in=3600.0)``: a new client of this test's result store, closed at the end."""
    service_url = str(request.getfixturevalue(backend_factory.requires)) if backend_factory.requires else None
    made: list[ResultBackend] = []

    def make(expires_in: float = 3600.0) -> ResultBackend:
        ctx = FactoryContext(tmp_path, token, service_url, expires_in=expires_in)
        backend = backend_factory.make(ctx)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
