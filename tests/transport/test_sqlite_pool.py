"""The SQLite plumbing: the connection pool."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from machinery.errors import BrokerError
from machinery.sqlite.pool import ConnectionPool, SQLiteOptions

SCHEMA = ("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, value INTEGER NOT NULL UNIQUE)",)


@pytest.fixture
def pool(tmp_path: Path) -> ConnectionPool:
    return ConnectionPool(SQLiteOptions(str(tmp_path / "t.sqlite3")), schema=SCHEMA, error=BrokerError, what="test")


def test_a_closed_pool_refuses_work(pool: ConnectionPool) -> None:
    pool.close()
    with pytest.raises(BrokerError, match="closed"):
        pool.run(lambda conn: None)


def test_a_failed_operation_rolls_back_and_raises_the_pools_error(pool: ConnectionPool) -> None:
    def insert_twice(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (value) VALUES (1)")
        conn.execute("INSERT INTO t (value) VALUES (1)")

    with pytest.raises(BrokerError, match="UNIQUE"):
        pool.run(insert_twice)
    assert pool.run(lambda conn: conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 0
    pool.close()
