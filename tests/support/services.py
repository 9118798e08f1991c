"""The services some tests need: RabbitMQ and Redis on loopback.

Tests that need one skip where it does not answer, and fail instead when
``MACHINERY_REQUIRE_RABBITMQ=1`` / ``MACHINERY_REQUIRE_REDIS=1`` (as ``.ci/run`` sets).
"""

from __future__ import annotations

import os
import socket

import pytest

__all__ = ["RABBITMQ_URL", "REDIS_URL", "port_open", "require_rabbitmq", "require_redis", "require_service"]

RABBITMQ_URL = os.environ.get("MACHINERY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("MACHINERY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str, env_var: str, host: str, port: int) -> None:
    """Skip the test when the service is not reachable, or fail when ``env_var`` demands it."""
    if port_open(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get(env_var):
        pytest.fail(f"{message}, and {env_var} requires it")
    pytest.skip(message)


def require_rabbitmq() -> str:
    """The URL of a reachable RabbitMQ (skips or fails when there is none)."""
    require_service("RabbitMQ", "MACHINERY_REQUIRE_RABBITMQ", "127.0.0.1", 5672)
    return RABBITMQ_URL


def require_redis() -> str:
    """The URL of a reachable Redis, database 15 (skips or fails when there is none)."""
    require_service("Redis", "MACHINERY_REQUIRE_REDIS", "127.0.0.1", 6379)
    return REDIS_URL
