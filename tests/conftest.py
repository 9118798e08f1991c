"""Fixtures every suite may use: the services some tests need (see ``tests/support/services.py``)."""

from __future__ import annotations

import pytest

from tests.support.services import require_rabbitmq, require_redis


@pytest.fixture
def rabbitmq_url() -> str:
    """The URL of a reachable RabbitMQ (skips or fails when there is none)."""
    return require_rabbitmq()


@pytest.fixture
def redis_url() -> str:
    """The URL of a reachable Redis, database 15 (skips or fails when there is none)."""
    return require_redis()
