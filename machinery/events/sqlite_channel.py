"""Events in the SQLite broker's file: one table, ``machinery_events``, read by polling.

Publishing inserts rows (and, at most every ``_TRIM_EVERY`` seconds, deletes those older than
``KEEP_SECONDS`` and all but the last ``KEEP_ROWS``); a subscription remembers the last row id it
read and polls for newer ones.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from machinery.config import Config
from machinery.errors import BrokerError
from machinery.events.channel import KEEP_SECONDS, EventSubscription
from machinery.events.model import Event, encode_event
from machinery.sqlite.pool import ConnectionPool, SQLiteOptions, file_options, parse_sqlite_url

__all__ = ["SQLiteEvents"]

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS machinery_events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, body BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS machinery_events_at ON machinery_events (at)",
)
#: Seconds between deletions of old events.
_TRIM_EVERY = 10.0
#: Most events kept, whatever their age (a busy system publishes many per second).
KEEP_ROWS = 100_000
#: Seconds between polls of a subscription waiting for events.
_POLL = 0.1
#: Most rows one read returns.
_READ_BATCH = 1000


class _Subscription:
    def __init__(self, pool: ConnectionPool, after: int) -> None:
        self._pool = pool
        self._after = after

    def read(self, timeout: float) -> list[bytes]:
        deadline = time.monotonic() + timeout
        after = self._after

        def newer(conn: sqlite3.Connection) -> list[tuple[int, bytes]]:
            rows = conn.execute(
                "SELECT id, body FROM machinery_events WHERE id > ? ORDER BY id LIMIT ?", (after, _READ_BATCH)
            ).fetchall()
            return [(int(row[0]), bytes(row[1])) for row in rows]

        while True:
            rows = self._pool.run(newer, read_only=True)
            if rows:
                self._after = rows[-1][0]
                return [body for _, body in rows]
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            time.sleep(min(_POLL, left))

    def close(self) -> None:
        pass


class SQLiteEvents:
    """The event channel of a SQLite broker file."""

    def __init__(self, path: str | SQLiteOptions) -> None:
        options = file_options(path, "SQLite events", BrokerError)
        self._pool = ConnectionPool(options, schema=SCHEMA, error=BrokerError, what="SQLite events")
        self._trimmed = 0.0

    @classmethod
    def from_config(cls, config: Config) -> SQLiteEvents:
        return cls(parse_sqlite_url(config.broker_url))

    def publish(self, events: Sequence[Event]) -> None:
        now = time.time()
        rows = [(now, encode_event(e)) for e in events]
        trim = now - self._trimmed > _TRIM_EVERY
        if trim:
            self._trimmed = now

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO machinery_events (at, body) VALUES (?, ?)", rows)
            if trim:
                conn.execute("DELETE FROM machinery_events WHERE at < ? OR id <= "
                             "(SELECT max(id) FROM machinery_events) - ?", (now - KEEP_SECONDS, KEEP_ROWS))
            conn.execute("COMMIT")

        self._pool.run(insert)

    def subscribe(self, history: float = 0.0) -> EventSubscription:
        since = time.time() - history

        def start(conn: sqlite3.Connection) -> int:
            if history > 0:
                row = conn.execute("SELECT min(id) FROM machinery_events WHERE at >= ?", (since,)).fetchone()
                if row is not None and row[0] is not None:
                    return int(row[0]) - 1
            row = conn.execute("SELECT max(id) FROM machinery_events").fetchone()
            return int(row[0]) if row is not None and row[0] is not None else 0

        return _Subscription(self._pool, self._pool.run(start, read_only=True))

    def close(self) -> None:
        self._pool.close()
