"""One Redis connection kept for a backend's batch writes, with the command packed here.

A worker's settler writes a batch of results every few milliseconds. Through redis-py's client each
write takes a connection from the pool (which polls the socket for stale data), encodes every
argument and dispatches the reply through its command table: in a batch of 32 results that is about
two thirds of the client's CPU. ``HeldWriter`` keeps one connection of the pool for itself, packs the
command's RESP bytes in one join and reads the reply with the connection's own parser, so errors,
TLS, timeouts and reconnecting stay redis-py's. One thread writes through it at a time; a caller
that finds it busy is told to use the client instead. A forked child takes a connection of its own
(the pool resets itself in a new process).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import redis
from redis.connection import Connection

__all__ = ["HeldWriter", "pack_command"]


def pack_command(parts: Sequence[str | bytes | int]) -> bytes:
    """The RESP bytes of the command ``parts`` (strings sent UTF-8 encoded, integers in decimal)."""
    out = [b"*%d\r\n" % len(parts)]
    append = out.append
    for part in parts:
        data = part if isinstance(part, bytes) else part.encode() if isinstance(part, str) else b"%d" % part
        append(b"$%d\r\n" % len(data))
        append(data)
        append(b"\r\n")
    return b"".join(out)


class HeldWriter:
    """Sends packed commands on one connection taken from ``client``'s pool and kept."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._pid = os.getpid()

    def try_call(self, packed: bytes) -> bool:
        """Send the command ``packed`` on the held connection and read its reply: True once done;
        False when another thread is using it (the caller sends the command another way). A Redis
        error reply is raised as redis-py raises it; a connection lost before the reply is tried
        once more on a new connection (the batch writes are idempotent)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._pid != os.getpid():  # a forked child: the socket is the parent's, left alone
                self._connection, self._pid = None, os.getpid()
            connection = self._connection
            if connection is None:
                connection = self._connection = self._pool.get_connection()
            try:
                connection.send_packed_command([packed])  # type: ignore[no-untyped-call]
                connection.read_response()
            except (redis.ConnectionError, redis.TimeoutError):
                connection.disconnect()  # type: ignore[no-untyped-call]
                connection.send_packed_command([packed])  # type: ignore[no-untyped-call]  # connects again
                connection.read_response()
            return True
        finally:
            self._lock.release()

    def close(self) -> None:
        """Give the connection back to the pool (which the client's ``close`` disconnects)."""
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None and self._pid == os.getpid():
                self._pool.release(connection)
