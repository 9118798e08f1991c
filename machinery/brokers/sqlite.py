"""The SQLite broker: the embedded default, shared by producer and worker processes on one machine.

One table holds every message. A row is deliverable when its ``visible_at`` time has passed:
publishing sets it to now + delay (delays live in the database; a delayed row is also marked
``held`` so it sits apart in the queue's index until a claim releases it when due), fetching claims
rows in one statement (``UPDATE ... RETURNING``) and pushes ``visible_at`` to now +
``visibility_timeout`` under this broker's lease token, so no two consumers hold a message while
its lease is valid; a consumer that dies simply stops renewing, and its messages become
deliverable again when the lease runs out. ``ack`` deletes (it marks the row, one page written
instead of two, and the broker deletes its marked rows in batches inside a later claim), ``nack``
clears the lease,
``dead_letter`` moves the row to ``<queue>.dead`` with the reason header. Settling a delivery
whose lease was lost (it expired and another consumer claimed it) does nothing but log a warning:
that consumer now owns it.

Durability: WAL mode with ``PRAGMA synchronous=NORMAL`` by default - a stored message survives a
crash of any process, the last commits may be lost on power failure or OS crash, and the database
is never corrupted. ``sqlite:///path?synchronous=full`` makes every commit survive power loss.

Latency: a blocked ``fetch`` listens on a unix datagram socket beside the database
(:mod:`machinery.sqlite.wakeup`) and publishers poke it after commit, so an idle consumer sleeps
in ``select`` and wakes within microseconds; it still polls every ``poll_interval`` seconds so
correctness never depends on a wake-up.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence

from machinery.brokers import sqlite_dead
from machinery.brokers.base import Broker, Delivery, OutgoingMessage, QueueDepth, dead_letter_queue
from machinery.brokers.dead_letters import DeadMessage, dead_letter_headers
from machinery.brokers.sqlite_table import (
    ACKED,
    ADD_TASK_COLUMN,
    INSERT,
    NEVER,
    NEXT_DUE,
    PROMOTE,
    PROMOTE_EVERY,
    PURGE_BATCH,
    SCHEMA,
    SETTLE_WHERE,
    TABLE,
    check_queue,
    claim_sql,
    decode_headers,
    delete_acked,
    encode_headers,
    message_rows,
)
from machinery.config import Config
from machinery.errors import BrokerError
from machinery.sqlite.pool import ConnectionPool, SQLiteOptions, TransactionPart, file_options, parse_sqlite_url
from machinery.sqlite.wakeup import Listener, WakeupChannel, wake_directory

__all__ = ["SQLiteBroker"]

log = logging.getLogger("machinery.brokers.sqlite")



class SQLiteBroker(Broker):
    """A broker in one SQLite file (WAL mode), safe for many producer and consumer processes and
    threads. See the module docstring for the leasing, durability and wake-up design."""

    def __init__(
        self,
        path: str | SQLiteOptions,
        *,
        visibility_timeout: float = 30.0,
        poll_interval: float = 0.5,
    ) -> None:
        options = file_options(path, "the SQLite broker", BrokerError)
        if visibility_timeout <= 0:
            raise BrokerError(f"visibility_timeout must be > 0 seconds, got {visibility_timeout!r}")
        self.options = options
        self.visibility_timeout = float(visibility_timeout)
        self.poll_interval = float(poll_interval)
        self._owner = secrets.token_hex(8)
        self._pool = ConnectionPool(options, schema=SCHEMA, error=BrokerError, what="SQLite broker")
        self._channel = WakeupChannel(wake_directory(options.path, "broker"))
        self._listener: Listener | None = None
        self._listener_lock = threading.Lock()
        self._woken = threading.Event()
        self._acked: list[int] = []
        self._acked_lock = threading.Lock()
        self._next_due = 0.0
        """When claims must next release due delayed rows (0: at the next claim)."""
        self._swept = False
        self._closed = False
        self._only: tuple[tuple[str, ...], float] | None = None
        """``claim_only``'s task names and age (seconds) after which other tasks qualify too."""
        self._pool.run(self._migrate)  # create the file and schema now: fail early on a bad path

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")}
        if "task" not in columns:
            try:
                conn.execute(ADD_TASK_COLUMN)
            except sqlite3.OperationalError:  # another process added it first
                pass

    @classmethod
    def from_url(cls, url: str, *, visibility_timeout: float = 30.0, poll_interval: float = 0.5) -> SQLiteBroker:
        """A broker for ``sqlite:///path[?synchronous=full]``."""
        return cls(parse_sqlite_url(url), visibility_timeout=visibility_timeout, poll_interval=poll_interval)

    @classmethod
    def from_config(cls, config: Config) -> SQLiteBroker:
        """A broker for ``config.broker_url`` with ``config.visibility_timeout``."""
        return cls(parse_sqlite_url(config.broker_url, "broker_url"), visibility_timeout=config.visibility_timeout)

    def __repr__(self) -> str:
        return f"<SQLiteBroker {self.options.path!r} synchronous={self.options.synchronous}>"

    # -- producing -------------------------------------------------------------------------------

    def declare(self, queues: Sequence[str]) -> None:
        """Queues need no declaring here (rows name their queue); only the names are checked."""
        for queue in queues:
            check_queue(queue)
        self._check_open()

    def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Store several messages in one transaction, then wake waiting consumers."""
        if not messages:
            return
        self._check_open()
        rows = message_rows(messages)

        if len(rows) == 1:
            row = rows[0]
            self._pool.run(lambda conn: conn.execute(INSERT, row))
        else:

            def insert_all(conn: sqlite3.Connection) -> None:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(INSERT, rows)
                conn.execute("COMMIT")

            self._pool.run(insert_all)
        self._channel.notify()

    # -- consuming -------------------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], max_messages: int, timeout: float) -> list[Delivery]:
        """Claim up to ``max_messages`` deliverable messages, waiting up to ``timeout`` seconds for
        the first (woken by publishers, by ``wake`` and by a poll every ``poll_interval``)."""
        if not queues or max_messages <= 0:
            return []
        for queue in queues:
            check_queue(queue)
        self._check_open()
        queue_list = list(dict.fromkeys(queues))
        deadline = time.monotonic() + max(timeout, 0.0)
        if not self._swept:
            # Acknowledged rows left marked by a process that died before deleting them.
            self._pool.run(lambda conn: conn.execute(f"DELETE FROM {TABLE} WHERE lease_owner = '{ACKED}'"))
            self._swept = True
        listener: Listener | None = None
        while True:
            if self._closed:
                return []
            if listener is not None:
                listener.drain()
            deliveries = self._claim(queue_list, max_messages)
            if deliveries:
                return deliveries
            if self._woken.is_set():
                self._woken.clear()
                return []
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                return []
            if listener is None:
                # Listen first, then look again: a publish committed before the listener existed
                # is seen by the next claim, one committed after it pokes the listener.
                listener = self._get_listener()
                continue
            next_visible = self._next_visible(queue_list)
            wait = min(remaining, self.poll_interval)
            if next_visible is not None:
                wait = min(wait, max(next_visible - time.time(), 0.0) + 0.001)
            if listener.wait(wait):
                self._next_due = 0.0  # something changed elsewhere, perhaps a delay: look again

    def pending(self, queue: str, limit: int) -> list[bytes]:
        """Up to ``limit`` bodies deliverable now in ``queue``, in delivery order (nothing is claimed)."""
        check_queue(queue)
        self._check_open()
        sql = (f"SELECT body FROM {TABLE} WHERE queue = ? AND held = 0 AND visible_at <= ? "
               "ORDER BY priority DESC, id LIMIT ?")
        now = time.time()
        rows = self._pool.run(lambda conn: conn.execute(sql, (queue, now, limit)).fetchall(), read_only=True)
        return [bytes(r[0]) for r in rows]

    def delayed(self, limit: int) -> list[tuple[str, float, bytes]]:
        """Up to ``limit`` delayed messages of every queue, soonest first (nothing is claimed)."""
        self._check_open()
        sql = f"SELECT queue, visible_at, body FROM {TABLE} WHERE held = 1 ORDER BY visible_at LIMIT ?"
        rows = self._pool.run(lambda conn: conn.execute(sql, (limit,)).fetchall(), read_only=True)
        return [(str(q), float(due), bytes(body)) for q, due, body in rows]

    def claim_only(self, task_names: Iterable[str], *, unclaimed_after: float) -> None:
        """Claim only messages for ``task_names`` (or of no known task, or published more than
        ``unclaimed_after`` seconds ago), so a consumer never takes a task it does not have while
        another consumer may have it."""
        self._only = (tuple(sorted(set(task_names))), float(unclaimed_after))

    def _claim(self, queues: list[str], max_messages: int) -> list[Delivery]:
        now = time.time()
        params: list[object] = [now + self.visibility_timeout, self._owner]
        only = self._only
        for queue in queues:
            params.extend((queue, now))
            if only is not None:
                params.extend(only[0])
                params.append(now - only[1])
            params.append(max_messages)
        if len(queues) > 1:
            params.append(max_messages)
        sql = claim_sql(len(queues), None if only is None else len(only[0]))
        promote = now >= self._next_due
        if len(self._acked) < PURGE_BATCH and not promote:
            rows = self._pool.run(lambda conn: conn.execute(sql, params).fetchall())
        else:
            acked = self._take_acked() if len(self._acked) >= PURGE_BATCH else []

            def purge_promote_claim(conn: sqlite3.Connection) -> tuple[list[sqlite3.Row], float | None]:
                conn.execute("BEGIN IMMEDIATE")
                delete_acked(conn, acked)
                next_due = None
                if promote:
                    conn.execute(PROMOTE, (now,))
                    next_due = conn.execute(NEXT_DUE).fetchone()[0]
                claimed = conn.execute(sql, params).fetchall()
                conn.execute("COMMIT")
                return claimed, next_due

            try:
                rows, next_due = self._pool.run(purge_promote_claim)
            except BaseException:
                with self._acked_lock:
                    self._acked.extend(acked)
                raise
            if promote:
                self._next_due = now + PROMOTE_EVERY if next_due is None else min(now + PROMOTE_EVERY, next_due)
        if not rows:
            return []
        rows.sort(key=lambda r: (-r[3], r[0]))
        return [
            Delivery(
                queue=queue,
                body=body,
                tag=tag,
                delivery_count=count,
                priority=priority,
                headers=decode_headers(headers),
                published_at=published_at,
            )
            for tag, queue, body, priority, headers, count, published_at in rows
        ]

    def _take_acked(self) -> list[int]:
        """The ids this broker marked acknowledged and has not deleted yet (handing them over)."""
        with self._acked_lock:
            acked, self._acked = self._acked, []
        return acked

    def _next_visible(self, queues: list[str]) -> float | None:
        """When the next held message of ``queues`` (delayed or leased) becomes deliverable."""
        marks = ",".join("?" * len(queues))
        sql = (
            f"SELECT MIN(v) FROM (SELECT MIN(visible_at) AS v FROM {TABLE} WHERE held = 1 UNION ALL "
            f"SELECT MIN(visible_at) FROM {TABLE} WHERE queue IN ({marks}) AND held = 0)"
        )
        row = self._pool.run(lambda conn: conn.execute(sql, queues).fetchone(), read_only=True)
        return None if row is None or row[0] is None else float(row[0])

    def _get_listener(self) -> Listener:
        with self._listener_lock:
            if self._listener is None:
                try:
                    self._listener = self._channel.listen()
                except OSError as exc:
                    raise BrokerError(
                        f"SQLite broker: cannot listen for wake-ups in {self._channel.directory}: {exc}"
                    ) from exc
            return self._listener

    # -- settling --------------------------------------------------------------------------------

    def _settle(self, sql: str, params: Sequence[object], delivery: Delivery, action: str) -> bool:
        changed = self._pool.run(lambda conn: conn.execute(sql, params).rowcount)
        if changed:
            return True
        log.warning(
            "%s of message %d on %r ignored: its lease was lost (it expired and the message may be "
            "delivered again, or another consumer has it now)",
            action,
            delivery.tag,
            delivery.queue,
        )
        return False

    def ack(self, delivery: Delivery) -> None:
        """Remove the message for good (if this consumer still holds its lease): marked at once,
        deleted with this broker's next claim."""
        self._check_open()
        sql = f"UPDATE {TABLE} SET lease_owner = '{ACKED}', visible_at = {NEVER} {SETTLE_WHERE}"
        if self._settle(sql, (delivery.tag, self._owner, delivery.delivery_count), delivery, "ack"):
            with self._acked_lock:
                self._acked.append(delivery.tag)

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """``ack`` each of ``deliveries`` in one transaction (one commit for the whole batch)."""
        if not deliveries:
            return
        if len(deliveries) == 1:
            self.ack(deliveries[0])
            return
        self._check_open()
        self._pool.transaction([self.settle_part(deliveries, ())])

    def settle_part(self, deliveries: Sequence[Delivery], messages: Sequence[OutgoingMessage]) -> TransactionPart:
        """Publishing ``messages`` and acknowledging ``deliveries`` as a part of a transaction on
        this broker's file (``ConnectionPool.transaction``); consumers are woken after the commit."""
        self._check_open()
        rows = message_rows(messages)
        sql = f"UPDATE {TABLE} SET lease_owner = '{ACKED}', visible_at = {NEVER} {SETTLE_WHERE}"
        owner = self._owner
        marked: list[bool] = []

        def work(conn: sqlite3.Connection) -> None:
            if rows:
                conn.executemany(INSERT, rows)
            marked[:] = [conn.execute(sql, (d.tag, owner, d.delivery_count)).rowcount > 0 for d in deliveries]

        def after() -> None:
            tags = [d.tag for d, ok in zip(deliveries, marked, strict=True) if ok]
            with self._acked_lock:
                self._acked.extend(tags)
            if len(tags) < len(deliveries):
                for d, ok in zip(deliveries, marked, strict=True):
                    if not ok:
                        log.warning(
                            "ack of message %d on %r ignored: its lease was lost (it expired and the message may "
                            "be delivered again, or another consumer has it now)", d.tag, d.queue,
                        )
            if rows:
                self._channel.notify()

        return TransactionPart(work, after)

    def transaction(self, parts: Sequence[TransactionPart]) -> None:
        """Run ``parts`` (of this broker and of a result backend on the same file) in one transaction."""
        self._pool.transaction(parts)

    def nack(self, delivery: Delivery, *, delay: float = 0.0) -> None:
        """Release the lease; the message is deliverable again after ``delay`` seconds."""
        self._check_open()
        visible_at = time.time() + max(delay, 0.0)
        sql = f"UPDATE {TABLE} SET lease_owner = NULL, visible_at = ?, held = ? {SETTLE_WHERE}"
        params = (visible_at, int(delay > 0), delivery.tag, self._owner, delivery.delivery_count)
        if self._settle(sql, params, delivery, "nack"):
            self._channel.notify()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the message to ``<queue>.dead`` with ``reason`` in its headers, in one statement."""
        self._check_open()
        headers = dead_letter_headers(delivery, reason)
        sql = f"UPDATE {TABLE} SET queue = ?, headers = ?, lease_owner = NULL, visible_at = ? {SETTLE_WHERE}"
        params = (
            dead_letter_queue(delivery.queue),
            encode_headers(headers),
            time.time(),
            delivery.tag,
            self._owner,
            delivery.delivery_count,
        )
        if self._settle(sql, params, delivery, "dead-letter"):
            self._channel.notify()

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Renew the leases of ``deliveries`` still held by this broker; lost ones are skipped."""
        if not deliveries:
            return
        self._check_open()
        visible_at = time.time() + self.visibility_timeout
        params = [(visible_at, d.tag, self._owner, d.delivery_count) for d in deliveries]
        sql = f"UPDATE {TABLE} SET visible_at = ? {SETTLE_WHERE}"

        def renew(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.executemany(sql, params)
            conn.execute("COMMIT")
            return cur.rowcount

        renewed = self._pool.run(renew)
        if renewed < len(params):
            log.warning("%d of %d leases could not be renewed: they were lost", len(params) - renewed, len(params))

    # -- dead letters (``DeadLetterStore``; the SQL is in ``sqlite_dead``) ------------------------

    def dead_letters(self, queue: str, limit: int | None = None) -> list[DeadMessage]:
        """The dead letters of ``queue`` (rows of ``<queue>.dead``), oldest first; ids are row ids."""
        check_queue(queue)
        self._check_open()
        return sqlite_dead.list_dead(self._pool, TABLE, queue, limit)

    def requeue_dead(self, queue: str, ids: Sequence[str] | None = None) -> list[str]:
        """Move dead letters back to ``queue`` in one transaction (atomic), then wake consumers."""
        check_queue(queue)
        self._check_open()
        moved = sqlite_dead.requeue_dead(self._pool, TABLE, queue, ids)
        if moved:
            self._channel.notify()
        return moved

    def purge_dead(self, queue: str) -> int:
        """Delete the dead letters of ``queue``."""
        check_queue(queue)
        self._check_open()
        return sqlite_dead.purge_dead(self._pool, TABLE, queue)

    # -- inspecting and stopping -----------------------------------------------------------------

    def depth(self, queue: str) -> QueueDepth:
        """Counts of ready (including expired leases), delayed, in-flight and dead messages."""
        check_queue(queue)
        self._check_open()
        sql = (
            "SELECT "
            "COALESCE(SUM(queue = ?1 AND visible_at <= ?3), 0), "
            "COALESCE(SUM(queue = ?1 AND visible_at > ?3 AND lease_owner IS NULL), 0), "
            f"COALESCE(SUM(queue = ?1 AND visible_at > ?3 AND lease_owner != '{ACKED}'), 0), "
            f"COALESCE(SUM(queue = ?2 AND (lease_owner IS NULL OR lease_owner != '{ACKED}')), 0) "
            f"FROM {TABLE} WHERE queue IN (?1, ?2)"
        )
        params = (queue, dead_letter_queue(queue), time.time())
        row = self._pool.run(lambda conn: conn.execute(sql, params).fetchone(), read_only=True)
        ready, delayed, in_flight, dead = (int(x) for x in row)
        return QueueDepth(queue=queue, ready=ready, delayed=delayed, in_flight=in_flight, dead=dead)

    def wake(self) -> None:
        """Make a ``fetch`` blocked in another thread return [] now (or the next one, if none is)."""
        self._woken.set()
        listener = self._listener
        if listener is not None:
            listener.poke()

    def close(self) -> None:
        """Give this broker's unsettled deliveries back to their queues at once, then release the
        database and the wake-up socket."""
        if self._closed:
            return
        acked = self._take_acked()
        release = f"UPDATE {TABLE} SET lease_owner = NULL, visible_at = ? WHERE lease_owner = ?"

        def settle_all(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            delete_acked(conn, acked)
            count = conn.execute(release, (time.time(), self._owner)).rowcount
            conn.execute("COMMIT")
            return count

        try:
            released = self._pool.run(settle_all)
        except BrokerError as exc:
            log.warning("SQLite broker: could not release leases at close (they will expire): %s", exc)
            released = 0
        self._closed = True
        if released:
            self._channel.notify()
        self.wake()
        with self._listener_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        self._pool.close()

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerError("SQLite broker is closed")
