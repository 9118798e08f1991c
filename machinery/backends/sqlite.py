"""The SQLite result backend: task states in a SQLite file (WAL), shared by the processes of one
machine; by default the same file as the SQLite broker, in its own tables.

Rows expire ``expires_in`` seconds after their last write: reads ignore expired rows and writes
delete them now and then. ``wait`` blocks on a unix datagram socket that ``set`` pokes after
committing a final state (:mod:`machinery.sqlite.wakeup`), with a poll every ``poll_interval``
seconds as the fallback. Durability is the broker's: WAL with ``synchronous=NORMAL`` by default.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from machinery.backends import sqlite_control
from machinery.backends.base import wait_all_final, wait_until_final
from machinery.backends.records import decode_value, encode_value
from machinery.config import Config
from machinery.errors import ResultBackendError
from machinery.jsonvalues import JSONValue
from machinery.sqlite.pool import ConnectionPool, SQLiteOptions, TransactionPart, file_options, parse_sqlite_url
from machinery.sqlite.wakeup import WakeupChannel, wake_directory
from machinery.states import TaskResult, TaskState

__all__ = ["SQLiteBackend"]

RESULTS = "machinery_results"
GROUPS = "machinery_groups"
MEMBERS = "machinery_group_members"
FOLLOW_UPS = "machinery_follow_ups_sent"

#: The wake-up topic notified once per write of final results, which ``wait_many`` listens to.
ANY_FINAL = "*final"

SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {RESULTS} (
        task_uuid TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        name TEXT NOT NULL,
        result TEXT,
        error TEXT NOT NULL,
        updated_at REAL NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    f"CREATE INDEX IF NOT EXISTS {RESULTS}_expiry ON {RESULTS} (expires_at)",
    f"""CREATE TABLE IF NOT EXISTS {GROUPS} (
        group_uuid TEXT PRIMARY KEY,
        remaining INTEGER NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    f"CREATE INDEX IF NOT EXISTS {GROUPS}_expiry ON {GROUPS} (expires_at)",
    f"""CREATE TABLE IF NOT EXISTS {MEMBERS} (
        group_uuid TEXT NOT NULL,
        position INTEGER NOT NULL,
        task_uuid TEXT NOT NULL,
        result TEXT,
        done INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (group_uuid, position)
    ) WITHOUT ROWID""",
    f"CREATE INDEX IF NOT EXISTS {MEMBERS}_task ON {MEMBERS} (group_uuid, task_uuid)",
    f"""CREATE TABLE IF NOT EXISTS {FOLLOW_UPS} (
        task_uuid TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
)

_UPSERT = (
    f"INSERT INTO {RESULTS} (task_uuid, state, name, result, error, updated_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_uuid) DO UPDATE SET state = excluded.state, "
    "name = excluded.name, result = excluded.result, error = excluded.error, "
    "updated_at = excluded.updated_at, expires_at = excluded.expires_at"
)
_SELECT = f"SELECT state, name, result, error, updated_at FROM {RESULTS} WHERE task_uuid = ? AND expires_at > ?"
_MARK_SENT = f"INSERT OR REPLACE INTO {FOLLOW_UPS} (task_uuid, expires_at) VALUES (?, ?)"
_SELECT_MANY = (
    f"SELECT task_uuid, state, name, result, error, updated_at FROM {RESULTS} WHERE expires_at > ? AND task_uuid"
)
#: Host parameters in one query (SQLite's limit is 32,766 since 3.32; older builds allow 999).
_SQL_CHUNK = 900


def _fetch_all(query: str, params: tuple[object, ...], conn: sqlite3.Connection) -> list[Any]:
    return conn.execute(query, params).fetchall()


def _record(task_uuid: str, row: tuple[str, str, str | None, str, float]) -> TaskResult:
    """The TaskResult of a row (state, name, result, error, updated_at)."""
    state, name, result, error, updated_at = row
    try:
        task_state = TaskState(state)
    except ValueError:
        raise ResultBackendError(f"task {task_uuid} has an unknown stored state {state!r}") from None
    return TaskResult(task_uuid, task_state, name, decode_value(result), error, updated_at)


class SQLiteBackend:
    """A ResultBackend in one SQLite file; thread- and process-safe."""

    def __init__(
        self,
        path: str | SQLiteOptions,
        *,
        expires_in: float = 3600.0,
        poll_interval: float = 0.5,
    ) -> None:
        options = file_options(path, "the SQLite result backend", ResultBackendError)
        if expires_in <= 0:
            raise ResultBackendError(f"expires_in must be > 0 seconds, got {expires_in!r}")
        self.options = options
        self.expires_in = float(expires_in)
        self.poll_interval = float(poll_interval)
        self._pool = ConnectionPool(options, schema=SCHEMA + sqlite_control.SCHEMA, error=ResultBackendError,
                                    what="SQLite result backend")
        self.control = sqlite_control.SQLiteControl(self._pool)
        """Revocations, rate-limit buckets and leases (``ControlStore``) in the same file."""
        self._channel = WakeupChannel(wake_directory(options.path, "results"))
        self._purge_every = min(60.0, self.expires_in)
        self._next_purge = time.monotonic() + self._purge_every
        self._pool.run(lambda conn: None)  # create the file and schema now: fail early on a bad path

    @classmethod
    def from_url(cls, url: str, *, expires_in: float = 3600.0) -> SQLiteBackend:
        """A backend for ``sqlite:///path[?synchronous=full]``."""
        return cls(parse_sqlite_url(url, "result_backend"), expires_in=expires_in)

    @classmethod
    def from_config(cls, config: Config) -> SQLiteBackend:
        """A backend for ``config.result_backend`` keeping results ``config.results_expire_in`` seconds."""
        return cls(parse_sqlite_url(config.result_backend, "result_backend"), expires_in=config.results_expire_in)

    def __repr__(self) -> str:
        return f"<SQLiteBackend {self.options.path!r} synchronous={self.options.synchronous}>"

    def set(self, result: TaskResult) -> None:
        """Store ``result`` as the task's latest state; wake waiters when it is final."""
        self.set_many((result,))

    def set_many(self, results: Sequence[TaskResult]) -> None:
        """Store every one of ``results`` in one transaction; wake the waiters of final ones."""
        if not results:
            return
        if len(results) == 1:
            part = self.store_part(results, ())
            self._pool.run(part.work)  # one statement: its own transaction
            part.after()
        else:
            self._pool.transaction([self.store_part(results, ())])

    def store_part(self, results: Sequence[TaskResult], follow_ups_sent: Sequence[str]) -> TransactionPart:
        """Storing ``results`` (and recording ``follow_ups_sent``) as a part of a transaction on
        this backend's file (``ConnectionPool.transaction``); waiters are woken after the commit."""
        now = time.time()
        expires_at = now + self.expires_in
        rows = [
            (r.task_uuid, str(r.state), r.name, encode_value(r.result, r.task_uuid), r.error, r.updated_at or now,
             expires_at)
            for r in results
        ]
        sent = [(uuid, expires_at) for uuid in follow_ups_sent]

        def work(conn: sqlite3.Connection) -> None:
            if len(rows) == 1:
                conn.execute(_UPSERT, rows[0])
            elif rows:
                conn.executemany(_UPSERT, rows)
            if sent:
                conn.executemany(_MARK_SENT, sent)

        def after() -> None:
            final = [r.task_uuid for r in results if r.state.is_final]
            if final:
                final.append(ANY_FINAL)
                self._channel.notify_many(final)
            if time.monotonic() >= self._next_purge:
                self._purge()

        return TransactionPart(work, after)

    def shares_file(self, path: str) -> bool:
        """Whether ``path`` is this backend's database file."""
        return os.path.realpath(path) == os.path.realpath(self.options.path)

    def get(self, task_uuid: str) -> TaskResult | None:
        """The latest unexpired state, or None."""
        params = (task_uuid, time.time())
        row = self._pool.run(lambda conn: conn.execute(_SELECT, params).fetchone(), read_only=True)
        if row is None:
            return None
        return _record(task_uuid, row)

    def get_many(self, task_uuids: Sequence[str]) -> list[TaskResult | None]:
        """The latest unexpired state of each task, in order (one query per 900)."""
        now = time.time()
        found: dict[str, TaskResult] = {}
        for start in range(0, len(task_uuids), _SQL_CHUNK):
            chunk = list(task_uuids[start:start + _SQL_CHUNK])
            query = f"{_SELECT_MANY} IN ({','.join('?' * len(chunk))})"
            params = (now, *chunk)
            rows: list[tuple[Any, ...]] = self._pool.run(
                functools.partial(_fetch_all, query, params), read_only=True)
            for uuid, *fields in rows:
                found[uuid] = _record(uuid, tuple(fields))
        return [found.get(uuid) for uuid in task_uuids]

    def wait(self, task_uuid: str, timeout: float) -> TaskResult | None:
        """Block up to ``timeout`` seconds for a final state (woken by ``set``, polling as a
        fallback); the latest state seen."""
        current = self.get(task_uuid)
        if (current is not None and current.ready) or timeout <= 0:
            return current
        deadline = time.monotonic() + timeout
        try:
            listener = self._channel.listen(task_uuid)
        except OSError as exc:
            raise ResultBackendError(f"cannot listen for results in {self._channel.directory}: {exc}") from exc
        def read() -> TaskResult | None:
            listener.drain()  # wake-ups before this read say nothing new
            return self.get(task_uuid)

        try:
            return wait_until_final(read, listener.wait, deadline, self.poll_interval)
        finally:
            listener.close()

    def wait_many(self, task_uuids: Sequence[str], timeout: float) -> list[TaskResult | None]:
        """Block up to ``timeout`` seconds until every task is final, woken once per write of final
        results (re-reading the unfinished ones in batches), polling as a fallback."""
        deadline = time.monotonic() + max(timeout, 0.0)
        try:
            listener = self._channel.listen(ANY_FINAL)
        except OSError as exc:
            raise ResultBackendError(f"cannot listen for results in {self._channel.directory}: {exc}") from exc

        def read(uuids: Sequence[str]) -> list[TaskResult | None]:
            listener.drain()
            return self.get_many(uuids)

        try:
            return wait_all_final(task_uuids, read, listener.wait, deadline, self.poll_interval)
        finally:
            listener.close()

    def mark_follow_ups_sent(self, task_uuids: Sequence[str]) -> None:
        """Record in one transaction that these tasks' follow-ups were published."""
        if not task_uuids:
            return
        expires_at = time.time() + self.expires_in
        rows = [(uuid, expires_at) for uuid in task_uuids]

        def mark(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_MARK_SENT, rows)
            conn.execute("COMMIT")

        self._pool.run(mark)

    def follow_ups_sent(self, task_uuid: str) -> bool:
        """Whether the task's follow-ups were recorded as published (and not expired)."""
        params = (task_uuid, time.time())
        query = f"SELECT 1 FROM {FOLLOW_UPS} WHERE task_uuid = ? AND expires_at > ?"
        return self._pool.run(lambda conn: conn.execute(query, params).fetchone(), read_only=True) is not None

    def group_start(self, group_uuid: str, task_uuids: Sequence[str]) -> None:
        """Record the group's members in order (replacing any earlier record of the group)."""
        expires_at = time.time() + self.expires_in
        members = [(group_uuid, i, uuid) for i, uuid in enumerate(task_uuids)]

        def start(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"DELETE FROM {GROUPS} WHERE group_uuid = ?", (group_uuid,))
            conn.execute(f"DELETE FROM {MEMBERS} WHERE group_uuid = ?", (group_uuid,))
            conn.execute(
                f"INSERT INTO {GROUPS} (group_uuid, remaining, expires_at) VALUES (?, ?, ?)",
                (group_uuid, len(members), expires_at),
            )
            conn.executemany(f"INSERT INTO {MEMBERS} (group_uuid, position, task_uuid) VALUES (?, ?, ?)", members)
            conn.execute("COMMIT")

        self._pool.run(start)

    def group_add_result(self, group_uuid: str, task_uuid: str, result: JSONValue) -> list[JSONValue] | None:
        """Record a member's result in one transaction; every result in group order once all are
        in, else None (also None for a group not started, finished or expired)."""
        text = encode_value(result, task_uuid)
        now = time.time()

        def add(conn: sqlite3.Connection) -> list[str | None] | None:
            conn.execute("BEGIN IMMEDIATE")
            header = conn.execute(
                f"SELECT remaining FROM {GROUPS} WHERE group_uuid = ? AND expires_at > ?", (group_uuid, now)
            ).fetchone()
            if header is None:
                conn.execute("COMMIT")
                return None
            newly_done = conn.execute(
                f"UPDATE {MEMBERS} SET result = ?, done = 1 WHERE group_uuid = ? AND task_uuid = ? AND done = 0",
                (text, group_uuid, task_uuid),
            ).rowcount
            if not newly_done:  # a result delivered again: the latest value wins
                conn.execute(
                    f"UPDATE {MEMBERS} SET result = ? WHERE group_uuid = ? AND task_uuid = ?",
                    (text, group_uuid, task_uuid),
                )
            remaining = int(header[0]) - newly_done
            conn.execute(
                f"UPDATE {GROUPS} SET remaining = ?, expires_at = ? WHERE group_uuid = ?",
                (remaining, now + self.expires_in, group_uuid),
            )
            values: list[str | None] | None = None
            if remaining <= 0:
                values = [
                    row[0]
                    for row in conn.execute(
                        f"SELECT result FROM {MEMBERS} WHERE group_uuid = ? ORDER BY position", (group_uuid,)
                    )
                ]
            conn.execute("COMMIT")
            return values

        values = self._pool.run(add)
        return None if values is None else [decode_value(v) for v in values]

    def group_done(self, group_uuid: str) -> None:
        """Forget the group's bookkeeping."""

        def done(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"DELETE FROM {GROUPS} WHERE group_uuid = ?", (group_uuid,))
            conn.execute(f"DELETE FROM {MEMBERS} WHERE group_uuid = ?", (group_uuid,))
            conn.execute("COMMIT")

        self._pool.run(done)

    def forget(self, task_uuid: str) -> None:
        """Drop the task's stored state."""
        def forget(conn: sqlite3.Connection) -> None:
            conn.execute(f"DELETE FROM {RESULTS} WHERE task_uuid = ?", (task_uuid,))
            conn.execute(f"DELETE FROM {FOLLOW_UPS} WHERE task_uuid = ?", (task_uuid,))

        self._pool.run(forget)

    def purge_expired(self) -> int:
        """Delete every expired result and group row now; how many results went."""
        now = time.time()

        def purge(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            removed = conn.execute(f"DELETE FROM {RESULTS} WHERE expires_at <= ?", (now,)).rowcount
            conn.execute(f"DELETE FROM {GROUPS} WHERE expires_at <= ?", (now,))
            conn.execute(f"DELETE FROM {FOLLOW_UPS} WHERE expires_at <= ?", (now,))
            conn.execute(f"DELETE FROM {MEMBERS} WHERE group_uuid NOT IN (SELECT group_uuid FROM {GROUPS})")
            conn.execute("COMMIT")
            return removed

        return self._pool.run(purge)

    def _purge(self) -> None:
        self._next_purge = time.monotonic() + self._purge_every
        self.purge_expired()

    def close(self) -> None:
        """Close the database connections."""
        self._pool.close()
