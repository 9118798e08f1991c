"""The SQLite broker's dead letters: rows of ``<queue>.dead`` in the broker's one table, listed,
requeued and purged by SQL. A dead letter's id is its row id, which it keeps from the moment it
was published; requeueing moves rows back in one transaction (atomic: a row is in one queue or the
other, never both or neither)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence

from machinery.brokers.base import dead_letter_queue
from machinery.brokers.dead_letters import DeadMessage, live_headers
from machinery.sqlite.pool import ConnectionPool

__all__ = ["list_dead", "purge_dead", "requeue_dead"]

#: An acknowledged (marked) row; such rows are not dead letters any more.
_LIVE = "(lease_owner IS NULL OR lease_owner != '')"


def _headers(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    value = json.loads(text)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def list_dead(pool: ConnectionPool, table: str, queue: str, limit: int | None) -> list[DeadMessage]:
    """The dead letters of ``queue``, oldest first."""
    sql = (f"SELECT id, body, headers, priority, delivery_count FROM {table} WHERE queue = ? AND {_LIVE} "
           "ORDER BY id LIMIT ?")
    params = (dead_letter_queue(queue), -1 if limit is None else limit)
    rows = pool.run(lambda conn: conn.execute(sql, params).fetchall(), read_only=True)
    out = []
    for row_id, body, headers, priority, count in rows:
        h = _headers(headers)
        message = DeadMessage.from_headers(str(row_id), queue, bytes(body), h, priority=priority)
        if message.delivery_count == 0:  # dead-lettered before the header was written
            message = DeadMessage.from_headers(str(row_id), queue, bytes(body), h, priority=priority,
                                               delivery_count=count)
        out.append(message)
    return out


def requeue_dead(pool: ConnectionPool, table: str, queue: str, ids: Sequence[str] | None) -> list[str]:
    """Move the dead letters ``ids`` (all when None) back to ``queue``, deliverable now, their
    delivery count reset; one transaction. Returns the ids moved."""
    dead = dead_letter_queue(queue)
    wanted: set[int] | None = None
    if ids is not None:
        wanted = {int(i) for i in ids if i.isdigit()}
    select = f"SELECT id, headers FROM {table} WHERE queue = ? AND {_LIVE} ORDER BY id"
    update = (f"UPDATE {table} SET queue = ?, headers = ?, held = 0, visible_at = ?, lease_owner = NULL, "
              "delivery_count = 0 WHERE id = ?")

    def move(conn: sqlite3.Connection) -> list[str]:
        conn.execute("BEGIN IMMEDIATE")  # the pool rolls back if anything below fails
        now = time.time()
        moved = []
        for row_id, headers in conn.execute(select, (dead,)).fetchall():
            if wanted is not None and row_id not in wanted:
                continue
            kept = live_headers(_headers(headers))
            text = json.dumps(kept, separators=(",", ":")) if kept else None
            conn.execute(update, (queue, text, now, row_id))
            moved.append(str(row_id))
        conn.execute("COMMIT")
        return moved

    return pool.run(move)


def purge_dead(pool: ConnectionPool, table: str, queue: str) -> int:
    """Delete the dead letters of ``queue``; returns how many."""
    sql = f"DELETE FROM {table} WHERE queue = ? AND {_LIVE}"
    count: int = pool.run(lambda conn: conn.execute(sql, (dead_letter_queue(queue),)).rowcount)
    return count
