"""``ControlStore`` in the SQLite result backend's file: revocations, token buckets and leases in
three small tables, each operation one transaction (``BEGIN IMMEDIATE``: the file's writers take
turns, so a bucket or a lease is never read and written by two processes at once)."""

from __future__ import annotations

import sqlite3
import time

from machinery.backends.control import Claim, refill
from machinery.sqlite.pool import ConnectionPool

__all__ = ["SCHEMA", "SQLiteControl"]

REVOKED = "machinery_revoked"
BUCKETS = "machinery_buckets"
LEASES = "machinery_leases"

SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {REVOKED} (
        task_uuid TEXT PRIMARY KEY, reason TEXT NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID""",
    f"""CREATE TABLE IF NOT EXISTS {BUCKETS} (
        key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated_at REAL NOT NULL) WITHOUT ROWID""",
    f"""CREATE TABLE IF NOT EXISTS {LEASES} (
        key TEXT PRIMARY KEY, owner TEXT NOT NULL, done INTEGER NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID""",
    f"CREATE INDEX IF NOT EXISTS {LEASES}_expiry ON {LEASES} (expires_at)",
)


class SQLiteControl:
    """``ControlStore`` on a connection pool whose schema includes ``SCHEMA``."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def revoke(self, task_uuid: str, reason: str, expires_in: float) -> None:
        sql = (f"INSERT INTO {REVOKED} (task_uuid, reason, expires_at) VALUES (?, ?, ?) "
               "ON CONFLICT (task_uuid) DO UPDATE SET reason = excluded.reason, expires_at = excluded.expires_at")
        row = (task_uuid, reason, time.time() + expires_in)
        self._pool.run(lambda conn: conn.execute(sql, row))

    def revocations(self) -> dict[str, str]:
        now = time.time()

        def read(conn: sqlite3.Connection) -> dict[str, str]:
            conn.execute(f"DELETE FROM {REVOKED} WHERE expires_at <= ?", (now,))
            return dict(conn.execute(f"SELECT task_uuid, reason FROM {REVOKED}").fetchall())

        return self._pool.run(read)

    def take_token(self, key: str, rate: float, capacity: float) -> float:
        def take(conn: sqlite3.Connection) -> float:
            conn.execute("BEGIN IMMEDIATE")
            now = time.time()
            row = conn.execute(f"SELECT tokens, updated_at FROM {BUCKETS} WHERE key = ?", (key,)).fetchone()
            held, at = (capacity, now) if row is None else (float(row[0]), float(row[1]))
            tokens, wait = refill(held, at, now, rate, capacity)
            conn.execute(f"INSERT OR REPLACE INTO {BUCKETS} (key, tokens, updated_at) VALUES (?, ?, ?)",
                         (key, tokens, now))
            conn.execute("COMMIT")
            return wait

        return self._pool.run(take)

    def claim(self, key: str, owner: str, ttl: float) -> Claim:
        def take(conn: sqlite3.Connection) -> Claim:
            conn.execute("BEGIN IMMEDIATE")
            now = time.time()
            row = conn.execute(f"SELECT owner, done, expires_at FROM {LEASES} WHERE key = ?", (key,)).fetchone()
            if row is not None and row[2] > now:
                if row[1]:
                    conn.execute("COMMIT")
                    return Claim.DONE
                if row[0] != owner:
                    conn.execute("COMMIT")
                    return Claim.HELD
            conn.execute(f"INSERT OR REPLACE INTO {LEASES} (key, owner, done, expires_at) VALUES (?, ?, 0, ?)",
                         (key, owner, now + ttl))
            if row is None:
                conn.execute(f"DELETE FROM {LEASES} WHERE expires_at <= ?", (now,))
            conn.execute("COMMIT")
            return Claim.MINE

        return self._pool.run(take)

    def complete(self, key: str, owner: str, keep: float) -> None:
        sql = f"UPDATE {LEASES} SET done = 1, expires_at = ? WHERE key = ? AND owner = ?"
        params = (time.time() + keep, key, owner)
        self._pool.run(lambda conn: conn.execute(sql, params))
