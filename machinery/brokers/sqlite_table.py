"""The SQLite broker's table: its schema, the SQL that publishes, claims and deletes rows, and how
rows and headers are written and read. The broker (:mod:`machinery.brokers.sqlite`) runs these
statements; keeping them here leaves it the locking, leasing and waking."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence

from machinery.brokers.base import OutgoingMessage
from machinery.errors import BrokerError

__all__ = [
    "ACKED", "ADD_TASK_COLUMN", "INSERT", "NEVER", "NEXT_DUE", "PROMOTE", "PROMOTE_EVERY", "PURGE_BATCH",
    "PURGE_CHUNK", "RETURNING", "SCHEMA", "SETTLE_WHERE", "TABLE", "candidates", "check_queue", "claim_sql",
    "decode_headers", "delete_acked", "encode_headers", "message_rows",
]

TABLE = "machinery_messages"

SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        id INTEGER PRIMARY KEY,
        queue TEXT NOT NULL,
        held INTEGER NOT NULL DEFAULT 0,
        priority INTEGER NOT NULL DEFAULT 0,
        visible_at REAL NOT NULL,
        lease_owner TEXT,
        delivery_count INTEGER NOT NULL DEFAULT 0,
        published_at REAL NOT NULL,
        headers TEXT,
        body BLOB NOT NULL,
        task TEXT
    )""",
    # Rows of a queue in delivery order (the rowid, i.e. publish order, is the implicit last column).
    # Delayed rows (held = 1) sit in their own range of it, so claims never read past them.
    f"CREATE INDEX IF NOT EXISTS {TABLE}_order ON {TABLE} (queue, held, priority DESC)",
    # Delayed rows by due time; a partial index, so other rows never pay for it.
    f"CREATE INDEX IF NOT EXISTS {TABLE}_due ON {TABLE} (visible_at) WHERE held = 1",
)

INSERT = (
    f"INSERT INTO {TABLE} (queue, held, priority, visible_at, published_at, headers, body, task) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def message_rows(messages: Sequence[OutgoingMessage]) -> list[tuple[object, ...]]:
    """The rows that store ``messages`` (checked: queue names, bytes bodies)."""
    now = time.time()
    rows: list[tuple[object, ...]] = []
    for m in messages:
        check_queue(m.queue)
        if not isinstance(m.body, (bytes, bytearray, memoryview)):
            raise BrokerError(f"a message body must be bytes, got {type(m.body).__name__}")
        delay = m.delay if m.delay > 0 else 0.0
        rows.append((m.queue, int(delay > 0), int(m.priority), now + delay, now, encode_headers(m.headers),
                     bytes(m.body), m.task or None))
    return rows


RETURNING = "RETURNING id, queue, body, priority, headers, delivery_count, published_at"
#: A file made before messages named their task gets the column (NULL: any consumer may claim it).
ADD_TASK_COLUMN = f"ALTER TABLE {TABLE} ADD COLUMN task TEXT"
SETTLE_WHERE = "WHERE id = ? AND lease_owner = ? AND delivery_count = ?"

#: An acknowledged row is first marked (owner ``ACKED``, never visible): that rewrites one table page,
#: where a DELETE would also rewrite the index. The broker that marked it deletes its marked rows in
#: batches inside its next claim transaction (any leftovers of a killed process at a consumer's start).
ACKED = ""
NEVER = 9e18
PURGE_CHUNK = 500
#: Marked rows are deleted once this many have gathered (a claim skips the few still marked).
PURGE_BATCH = 16
#: Claims release due delayed rows (held = 1 -> 0) at least this often (seconds), and whenever a
#: wake-up arrived, so a delay set by another process is honoured within this time by a busy consumer.
PROMOTE_EVERY = 0.1
PROMOTE = f"UPDATE {TABLE} SET held = 0 WHERE held = 1 AND visible_at <= ?"
NEXT_DUE = f"SELECT MIN(visible_at) FROM {TABLE} WHERE held = 1"


def candidates(n_queues: int, n_tasks: int | None = None) -> str:
    """SQL selecting the ids of up to N deliverable rows of ``n_queues`` queues, in delivery order.
    Each queue is read through the index separately, so a large backlog is never sorted. With
    ``n_tasks``, only rows for those task names, rows of unknown task and rows published before a
    given time qualify."""
    only = ""
    if n_tasks is not None:
        names = ", ".join("?" * n_tasks)
        only = f"AND (task IS NULL OR task = '' OR task IN ({names}) OR published_at <= ?) "
    one = (
        f"SELECT id, priority FROM {TABLE} WHERE queue = ? AND held = 0 AND visible_at <= ? {only}"
        "ORDER BY priority DESC, id LIMIT ?"
    )
    if n_queues == 1:
        return one.replace("SELECT id, priority", "SELECT id", 1)
    union = " UNION ALL ".join([f"SELECT * FROM ({one})"] * n_queues)
    return f"SELECT id FROM ({union}) ORDER BY priority DESC, id LIMIT ?"


def claim_sql(n_queues: int, n_tasks: int | None = None) -> str:
    return (
        f"UPDATE {TABLE} SET visible_at = ?, lease_owner = ?, delivery_count = delivery_count + 1 "
        f"WHERE id IN ({candidates(n_queues, n_tasks)}) {RETURNING}"
    )


def delete_acked(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    """Delete rows that were acknowledged (marked), by id; rows not marked are left alone."""
    for start in range(0, len(ids), PURGE_CHUNK):
        chunk = ids[start : start + PURGE_CHUNK]
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM {TABLE} WHERE id IN ({marks}) AND lease_owner = '{ACKED}'", chunk)


def encode_headers(headers: Mapping[str, str] | None) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise BrokerError(f"message headers must map str to str, got {key!r}: {value!r}")
    return json.dumps(dict(headers), separators=(",", ":"))


def decode_headers(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    value = json.loads(text)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def check_queue(queue: str) -> None:
    if not isinstance(queue, str) or not queue:
        raise BrokerError(f"a queue name must be a non-empty str, got {queue!r}")
