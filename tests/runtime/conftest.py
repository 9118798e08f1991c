"""Fixtures for runtime tests: an App on each broker of ``brokers.FACTORIES``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from machinery import App, Config
from tests.runtime.brokers import FACTORIES


@pytest.fixture(params=sorted(FACTORIES))
def broker_config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    """A Config for each named broker factory."""
    factory = FACTORIES[request.param]
    return factory(tmp_path)


@pytest.fixture
def app(broker_config: Config) -> Iterator[App]:
    """An App on each broker (closed at the end)."""
    application = App(broker_config)
    yield application
    application.close()
