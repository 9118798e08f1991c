"""What the SQLite result backend adds to the contract: URLs, wake-ups without polling, purging."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from machinery.backends.sqlite import SQLiteBackend
from machinery.config import Config
from machinery.errors import ConfigError, ResultBackendError
from machinery.states import TaskResult, TaskState


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "results.sqlite3")


def test_from_config_uses_the_url_and_expiry(db: str) -> None:
    backend = SQLiteBackend.from_config(Config(result_backend=f"sqlite:///{db}", results_expire_in=120))
    try:
        assert backend.options.path == db
        assert backend.expires_in == 120
    finally:
        backend.close()


def test_an_in_memory_database_is_refused() -> None:
    with pytest.raises(ConfigError, match="result_backend"):
        SQLiteBackend.from_url("sqlite:///:memory:")


def test_the_broker_and_the_backend_can_share_one_file(db: str) -> None:
    from machinery.brokers.sqlite import SQLiteBroker

    broker, backend = SQLiteBroker(db), SQLiteBackend(db)
    try:
        broker.publish("q", b"task")
        backend.set(TaskResult("t1", TaskState.SUCCESS, result=1))
        assert broker.depth("q").ready == 1
        assert backend.get("t1") is not None
    finally:
        broker.close()
        backend.close()


def test_purging_deletes_expired_results_and_groups(db: str) -> None:
    backend = SQLiteBackend(db, expires_in=0.2)
    try:
        backend.set(TaskResult("t1", TaskState.SUCCESS))
        backend.group_start("g1", ["a", "b"])
        time.sleep(0.4)
        assert backend.purge_expired() == 1
        rows = backend._pool.run(
            lambda conn: conn.execute("SELECT (SELECT COUNT(*) FROM machinery_group_members), "
                                      "(SELECT COUNT(*) FROM machinery_groups)").fetchone()
        )
        assert tuple(rows) == (0, 0)
    finally:
        backend.close()


def test_a_result_json_cannot_carry_is_refused_naming_the_task(db: str) -> None:
    backend = SQLiteBackend(db)
    try:
        with pytest.raises(ResultBackendError, match="t-nan"):
            backend.set(TaskResult("t-nan", TaskState.SUCCESS, result=float("nan")))
    finally:
        backend.close()
