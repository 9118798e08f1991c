"""The SQLite connection pool shared by the SQLite broker and result backend: URL parsing, a pool of
connections in WAL mode, and bounded retries of "database is locked" turned into clear errors.

Connections are pooled rather than kept per thread so that short-lived threads (a web server's)
do not leak them; each operation borrows one connection and returns it. Every connection uses
``busy_timeout``; a statement still refused as locked is retried a few times, then the caller's
error class is raised. A pool noticed in a forked child is dropped (a SQLite connection must
not cross ``fork``).

The operations that may write take turns, within one process, on a lock per database file that
every pool on that file shares (reads do not take it): SQLite lets one connection write at a time,
and a connection that finds the file locked waits in SQLite's busy handler, which sleeps 1 ms, then
2, 5, 10 and more before it looks again. A worker's fetching thread and its settler met there often
enough to lose a quarter of their rate; waiting on a lock wakes the next writer as soon as the
last one is done. Writers in other processes still meet in the busy handler.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit

from machinery.errors import ConfigError, MachineryError
from machinery.urls import masked_url

__all__ = ["ConnectionPool", "SQLiteOptions", "TransactionPart", "file_options", "parse_sqlite_url", "writers_lock"]

T = TypeVar("T")


class _Writers:
    """The writers' lock of each database file (by real path) in this process."""

    def __init__(self) -> None:
        self.locks: dict[str, threading.RLock] = {}
        self.guard = threading.Lock()

    def lock(self, path: str) -> threading.RLock:
        lock = self.locks.get(path)
        if lock is None:
            with self.guard:
                lock = self.locks.setdefault(path, threading.RLock())
        return lock

    def forget(self) -> None:
        """(In a forked child) Locks held by the parent's threads would stay held here: start afresh."""
        self.guard = threading.Lock()
        self.locks = {}


_WRITERS = _Writers()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WRITERS.forget)


def writers_lock(path: str) -> threading.RLock:
    """The lock that this process's writers to the database file ``path`` (a real path, as
    ``os.path.realpath`` gives it) take turns on."""
    return _WRITERS.lock(path)


@dataclass(frozen=True, slots=True)
class TransactionPart:
    """What one component (the broker, the result backend) adds to a transaction that another runs
    on the same file: ``work`` runs its statements inside it, ``after`` runs once it committed
    (wake-ups, bookkeeping)."""

    work: Callable[[sqlite3.Connection], None]
    after: Callable[[], None]


_SYNC_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
_LOCKED_RETRIES = 4


@dataclass(frozen=True, slots=True)
class SQLiteOptions:
    """Where the database file is and how it is opened."""

    path: str
    synchronous: str = "NORMAL"
    """SQLite's ``PRAGMA synchronous`` in WAL mode. NORMAL: a commit survives a crash of the
    process, the last commits may be lost on power failure or OS crash; FULL: survives those too."""
    busy_timeout: float = 5.0
    """Seconds a write waits for another writer (in this process: on the writers' lock; in another:
    in SQLite's busy handler) before it is retried."""


def file_options(path: str | SQLiteOptions, what: str, error: type[MachineryError]) -> SQLiteOptions:
    """``path`` as options, refusing ``:memory:`` (a database that other processes cannot share)
    with ``error`` naming ``what`` needs the file."""
    options = path if isinstance(path, SQLiteOptions) else SQLiteOptions(path=path)
    if options.path == ":memory:":
        raise error(f"{what} needs a database file; :memory: cannot be shared between processes")
    return options


def parse_sqlite_url(url: str, key: str = "broker_url") -> SQLiteOptions:
    """``sqlite:///relative/path``, ``sqlite:////absolute/path``, with optional query
    ``?synchronous=normal|full|extra|off&busy_timeout=5``. ``:memory:`` is refused: an in-memory
    database cannot be shared between the processes of a worker and its senders."""
    shown = masked_url(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(key, "a sqlite:///path URL", shown) from None
    if parts.scheme != "sqlite":
        raise ConfigError(key, "a sqlite:///path URL", shown)
    if parts.netloc:
        raise ConfigError(key, "sqlite:///path (three slashes, then the file path)", shown)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ConfigError(key, "sqlite:///path with a file path", shown)
    if path == ":memory:" or path.startswith("file::memory:"):
        raise ConfigError(
            key, "a database file path (an in-memory SQLite database cannot be shared between processes)", shown
        )
    synchronous = "NORMAL"
    busy_timeout = 5.0
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "synchronous":
            synchronous = value.upper()
            if synchronous not in _SYNC_LEVELS:
                raise ConfigError(f"{key} synchronous", "one of off, normal, full, extra", value)
        elif name == "busy_timeout":
            try:
                busy_timeout = float(value)
            except ValueError:
                raise ConfigError(f"{key} busy_timeout", "a number of seconds", value) from None
            if busy_timeout < 0:
                raise ConfigError(f"{key} busy_timeout", "a number of seconds >= 0", value)
        else:
            raise ConfigError(key, "only the query options synchronous and busy_timeout", name)
    return SQLiteOptions(path=path, synchronous=synchronous, busy_timeout=busy_timeout)


def _why_unopenable(path: str, exc: sqlite3.Error) -> str:
    """The absolute path of a database file that could not be opened, and the likeliest reason."""
    absolute = os.path.abspath(path)
    directory = os.path.dirname(absolute)
    if not os.path.isdir(directory):
        return f"{absolute}: the directory {directory} does not exist"
    if not os.access(directory, os.W_OK):
        return f"{absolute}: the directory {directory} is not writable"
    return f"{absolute}: {exc}"


def _is_locked(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class ConnectionPool:
    """Connections to one database file, borrowed per operation, with bounded lock retries."""

    def __init__(
        self,
        options: SQLiteOptions,
        *,
        schema: Iterable[str],
        error: type[MachineryError],
        what: str,
    ) -> None:
        self.options = options
        self._path = os.path.abspath(options.path)
        """The file, fixed when the pool is made (a relative path does not follow a later chdir)."""
        self._file = os.path.realpath(self._path)
        """Its real path: the key of its writers' lock."""
        self._schema = tuple(schema)
        self._error = error
        self._what = what
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        self._ready = False

    def __repr__(self) -> str:
        return f"<ConnectionPool {self.options.path!r} synchronous={self.options.synchronous}>"

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self.options.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.options.busy_timeout * 1000)}")
            if not self._ready:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                if mode is None or str(mode[0]).lower() != "wal":
                    raise self._error(f"{self._what}: {self.options.path} cannot use WAL mode (got {mode!r})")
                self._write(self._create_schema, conn)
                self._ready = True
            conn.execute(f"PRAGMA synchronous = {self.options.synchronous}")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            conn.close()
            raise
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        for statement in self._schema:
            conn.execute(statement)
        conn.execute("COMMIT")

    def _acquire(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # Inherited through fork: forget the parent's connections without touching them.
            with self._lock:
                self._idle, self._all, self._pid = [], [], os.getpid()
        if self._closed:
            raise self._error(f"{self._what} is closed")
        try:
            return self._idle.pop()
        except IndexError:
            pass
        conn = self._open()
        with self._lock:
            self._all.append(conn)
        return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        if self._closed or self._pid != os.getpid():
            conn.close()
            return
        self._idle.append(conn)

    def _discard(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        try:
            conn.close()
        except sqlite3.Error:
            pass

    def _after_error(self, conn: sqlite3.Connection, exc: sqlite3.Error) -> None:
        """Roll back what ``conn`` left open; keep it unless it may be broken."""
        try:
            if conn.in_transaction:
                conn.rollback()
        except sqlite3.Error:
            self._discard(conn)
            return
        if isinstance(exc, sqlite3.OperationalError) and not _is_locked(exc):
            self._discard(conn)
        else:
            self._release(conn)

    def run(self, operation: Callable[[sqlite3.Connection], T], *, read_only: bool = False) -> T:
        """Run ``operation`` with a borrowed connection, retrying it when the database stays
        locked; any other SQLite failure raises the pool's error class at once. Unless it only
        reads (``read_only``), it runs holding this process's writers' lock of the file."""
        attempt = 0
        while True:
            try:
                conn = self._acquire()
            except sqlite3.Error as exc:
                if _is_locked(exc) and attempt < _LOCKED_RETRIES:
                    attempt += 1
                    time.sleep(0.01 * attempt)
                    continue
                raise self._error(f"{self._what}: cannot open {_why_unopenable(self.options.path, exc)}") from exc
            try:
                result = operation(conn) if read_only else self._write(operation, conn)
            except sqlite3.Error as exc:
                self._after_error(conn, exc)
                if _is_locked(exc) and attempt < _LOCKED_RETRIES:
                    attempt += 1
                    time.sleep(0.01 * attempt)
                    continue
                if _is_locked(exc):
                    raise self._error(
                        f"{self._what}: {self.options.path} stayed locked after {attempt + 1} tries: {exc}"
                    ) from exc
                raise self._error(f"{self._what}: {self.options.path}: {exc}") from exc
            except BaseException:
                if conn.in_transaction:
                    try:
                        conn.rollback()
                    except sqlite3.Error:
                        pass
                self._release(conn)
                raise
            self._release(conn)
            return result

    def _write(self, operation: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
        """``operation`` on ``conn`` holding the writers' lock, waited for up to ``busy_timeout``
        seconds (then refused as locked, as SQLite refuses a write it waited for that long)."""
        lock = writers_lock(self._file)
        if not lock.acquire(timeout=self.options.busy_timeout):
            raise sqlite3.OperationalError("database is locked (by another writer in this process)")
        try:
            return operation(conn)
        finally:
            lock.release()

    def transaction(self, parts: Sequence[TransactionPart]) -> None:
        """Run every part's ``work`` in one ``BEGIN IMMEDIATE`` ... ``COMMIT`` (all or nothing),
        then every part's ``after``."""

        def run_all(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            for part in parts:
                part.work(conn)
            conn.execute("COMMIT")

        self.run(run_all)
        for part in parts:
            part.after()

    def close(self) -> None:
        """Close every connection; later operations raise the pool's error."""
        with self._lock:
            self._closed = True
            conns, self._all, self._idle = self._all, [], []
        if self._pid != os.getpid():
            return
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
