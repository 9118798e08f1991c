"""The SQLite plumbing: the connection pool."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from machinery.errors import BrokerError
from machinery.sqlite.pool import ConnectionPool, SQLiteOptions, writers_lock

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


# ----------------------------------------------------------------- writers of one process take turns


def _holding_a_write(pool: ConnectionPool) -> tuple[threading.Thread, threading.Event, threading.Event]:
    """A thread inside a write transaction on ``pool`` until the second event is set; returns
    (the thread, it holds the write, let it commit)."""
    holding, release = threading.Event(), threading.Event()

    def write(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (value) VALUES (1)")
        holding.set()
        release.wait(30)
        conn.execute("COMMIT")

    thread = threading.Thread(target=pool.run, args=(write,))
    thread.start()
    assert holding.wait(10)
    return thread, holding, release


def test_a_writer_waits_its_turn_instead_of_meeting_sqlites_busy_handler(tmp_path: Path) -> None:
    """A second pool on the same file (named another way) does not start its write while the first
    pool's writer holds the file (where it would wait in SQLite's busy handler, which sleeps): it
    waits on the process's writers' lock and writes once the first writer committed."""
    first = ConnectionPool(SQLiteOptions(str(tmp_path / "t.sqlite3")), schema=SCHEMA, error=BrokerError, what="test")
    (tmp_path / "sub").mkdir()
    second = ConnectionPool(SQLiteOptions(str(tmp_path / "sub" / ".." / "t.sqlite3")),
                            schema=SCHEMA, error=BrokerError, what="test")
    second.run(lambda conn: None, read_only=True)
    holder, _, release = _holding_a_write(first)
    tries: list[int] = []

    def insert(conn: sqlite3.Connection) -> None:
        tries.append(1)
        conn.execute("INSERT INTO t (value) VALUES (2)")

    writer = threading.Thread(target=second.run, args=(insert,))
    writer.start()
    writer.join(0.2)
    assert writer.is_alive() and not tries, "the second writer started while the first held the file"
    release.set()
    holder.join(10)
    writer.join(10)
    assert not writer.is_alive()
    assert tries == [1]
    assert second.run(lambda conn: conn.execute("SELECT COUNT(*) FROM t").fetchone()[0], read_only=True) == 2
    first.close()
    second.close()


def test_a_writer_kept_waiting_past_busy_timeout_is_refused_as_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "t.sqlite3")
    first = ConnectionPool(SQLiteOptions(path), schema=SCHEMA, error=BrokerError, what="test")
    second = ConnectionPool(SQLiteOptions(path, busy_timeout=0.05), schema=SCHEMA, error=BrokerError, what="test")
    second.run(lambda conn: None, read_only=True)
    holder, _, release = _holding_a_write(first)
    monkeypatch.setattr(time, "sleep", lambda _s: None)  # the pool's back-off between locked tries
    try:
        with pytest.raises(BrokerError, match="stayed locked"):
            second.run(lambda conn: conn.execute("INSERT INTO t (value) VALUES (2)"))
    finally:
        release.set()
        holder.join(10)
    second.run(lambda conn: conn.execute("INSERT INTO t (value) VALUES (2)"))
    first.close()
    second.close()


def test_a_relative_path_names_the_file_of_the_directory_the_pool_was_made_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    pool = ConnectionPool(SQLiteOptions("t.sqlite3"), schema=SCHEMA, error=BrokerError, what="test")
    monkeypatch.chdir(tmp_path / "b")
    pool.run(lambda conn: conn.execute("INSERT INTO t (value) VALUES (1)"))
    assert (tmp_path / "a" / "t.sqlite3").exists()
    assert not (tmp_path / "b" / "t.sqlite3").exists()
    pool.close()


def test_a_read_does_not_wait_for_a_writer(pool: ConnectionPool) -> None:
    pool.run(lambda conn: conn.execute("INSERT INTO t (value) VALUES (7)"))
    holder, _, release = _holding_a_write(pool)
    try:
        seen: list[int] = []
        reader = threading.Thread(target=lambda: seen.append(
            pool.run(lambda conn: conn.execute("SELECT COUNT(*) FROM t").fetchone()[0], read_only=True)))
        reader.start()
        reader.join(10)
        assert seen == [1], "a read waited for the writer's commit"
    finally:
        release.set()
        holder.join(10)
        pool.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_inherit_a_held_writers_lock(pool: ConnectionPool) -> None:
    pool.run(lambda conn: None)
    holder, _, release = _holding_a_write(pool)
    try:
        pid = os.fork()
        if pid == 0:  # the child: the parent's writing thread is not here to let go of the lock
            code = 0 if writers_lock(os.path.realpath(pool.options.path)).acquire(timeout=5) else 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        release.set()
        holder.join(10)
        pool.close()
