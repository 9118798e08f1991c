"""Fixtures of the transport suites: a broker (or backend) builder per registered kind."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


def _clients(
    factory: BrokerFactory | BackendFactory, request: pytest.FixtureRequest, tmp_path: Path, token: str
) -> Iterator[Callable[..., Any]]:
    """``make(**timeouts)``: a new client of this test's store built by ``factory`` (given the
    service its ``requires`` names), every one closed at the end."""
    service_url = str(request.getfixturevalue(factory.requires)) if factory.requires else None
    made: list[Broker | ResultBackend] = []

    def make(**timeouts: float) -> Broker | ResultBackend:
        client = factory.make(FactoryContext(tmp_path, token, service_url, **timeouts))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def make_broker(
    broker_factory: BrokerFactory, request: pytest.FixtureRequest, tmp_path: Path, token: str
) -> Iterator[MakeBroker]:
    """``make_broker(visibility_timeout=30.0)``: a new client of this test's broker, closed at the end."""
    yield from _clients(broker_factory, request, tmp_path, token)


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
def backend_factory(request: pytest.FixtureRequest) -> BackendFactory:
    """Each registered result backend kind in turn."""
    return BACKEND_FACTORIES[str(request.param)]


@pytest.fixture
def make_backend(
    backend_factory: BackendFactory, request: pytest.FixtureRequest, tmp_path: Path, token: str
) -> Iterator[MakeBackend]:
    """``make_backend(expires_in=3600.0, poll_interval=0.5)``: a new client of this test's result
    store, closed at the end."""
    yield from _clients(backend_factory, request, tmp_path, token)
