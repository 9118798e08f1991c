"""Named app-config factories for runtime tests, so the same workflow tests run on every broker.

Each factory takes a fresh temporary directory and returns a Config whose broker, result backend
and queue names are unique to the test. A factory may skip the test (a service that is not there).
Add a broker by adding a factory to ``FACTORIES`` (e.g. "amqp").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from machinery import Config
from tests.support.amqp import amqp_config
from tests.support.names import unique_name

__all__ = ["FACTORIES", "ConfigFactory", "memory_config", "sqlite_config"]

ConfigFactory = Callable[[Path], Config]


def memory_config(tmp: Path) -> Config:
    """In-memory broker and results, shared by name inside this process."""
    name = unique_name("rt")
    return Config(
        broker_url=f"memory://{name}",
        result_backend=f"memory://{name}",
        default_queue=unique_name("tasks"),
        visibility_timeout=5.0,
    )


def sqlite_config(tmp: Path) -> Config:
    """The embedded default: one SQLite file for broker and results, in the test's directory."""
    url = f"sqlite:///{tmp / 'machinery.sqlite3'}"
    return Config(broker_url=url, result_backend=url, default_queue=unique_name("tasks"), visibility_timeout=5.0)


FACTORIES: dict[str, ConfigFactory] = {"memory": memory_config, "sqlite": sqlite_config, "amqp": amqp_config}
