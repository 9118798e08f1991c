"""Wake-ups between processes on one machine: unix datagram sockets in a directory beside a file.

A process that waits (a blocked ``fetch``, a result ``wait``) binds a :class:`Listener` in the
directory; a process that makes something ready (``publish``, a final result) calls
:meth:`WakeupChannel.notify` after its commit, which sends one byte to every listener of the topic.
Sends never block and ignore full or dead sockets (dead ones are removed). Correctness never
depends on a wake-up arriving: waiters still poll at a modest interval, the wake-up only makes
them return in microseconds instead of at the next poll.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import select
import socket
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["Listener", "WakeupChannel", "wake_directory"]

#: Unix socket paths are limited to 107 bytes on Linux (103 on macOS); a listener's name takes up to
#: 28 (topic 13, pid 7, dot, random 6) plus the slash.
_MAX_DIR_LENGTH = 72
#: Seconds a cached directory listing is trusted when the directory's mtime has not changed. A
#: listing taken within this time of the mtime is rescanned (coarse kernel timestamps: the racy-git rule).
_RACY_WINDOW = 0.05


def wake_directory(db_path: str, kind: str) -> Path:
    """Where listeners for ``kind`` ("broker", "results") of the database at ``db_path`` live:
    ``<db>.wake/<kind>``, or a short directory under the temp dir when that path is too long."""
    base = os.path.abspath(db_path) + ".wake"
    if len(base) + len(kind) + 1 > _MAX_DIR_LENGTH:
        digest = hashlib.sha256(os.path.realpath(db_path).encode()).hexdigest()[:20]
        base = os.path.join(tempfile.gettempdir(), f"machinery-{os.getuid()}", digest + ".wake")
    return Path(base) / kind


def _topic_prefix(topic: str) -> str:
    """The file-name prefix of listeners for ``topic`` ("" is the catch-all topic)."""
    if not topic:
        return "all."
    return hashlib.blake2b(topic.encode(), digest_size=6).hexdigest() + "."


class Listener:
    """One bound datagram socket that a waiting thread blocks on. Not thread-safe: one waiter."""

    def __init__(self, directory: Path, topic: str = "") -> None:
        name = f"{_topic_prefix(topic)}{os.getpid()}.{secrets.token_hex(3)}"
        self.directory = directory
        self.path = str(directory / name)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            for attempt in range(3):
                directory.mkdir(parents=True, exist_ok=True)
                try:
                    self._sock.bind(self.path)
                    break
                except FileNotFoundError:  # the last listener just removed the empty directory
                    if attempt == 2:
                        raise
            self._sock.setblocking(False)
        except OSError:
            self._sock.close()
            raise
        self._closed = False

    def drain(self) -> None:
        """Discard pending wake-ups (call before checking the state the wake-ups announce)."""
        recv = self._sock.recv
        while True:
            try:
                recv(64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a wake-up; True when one arrived."""
        if timeout <= 0 or self._closed:
            return False
        try:
            ready, _, _ = select.select([self._sock], [], [], timeout)
        except (OSError, ValueError):
            return False
        return bool(ready)

    def poke(self) -> None:
        """Wake this listener (from any thread of this process)."""
        _send(self.path)

    def close(self) -> None:
        """Stop listening and remove the socket file."""
        if self._closed:
            return
        self._closed = True
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        # Leave no empty directories behind (fails, harmlessly, while other listeners remain).
        with contextlib.suppress(OSError):
            os.rmdir(self.directory)
            os.rmdir(self.directory.parent)


def _send(path: str) -> bool:
    """Send one byte to the socket at ``path``; False when nobody listens there any more."""
    sock = _sender()
    try:
        sock.sendto(b"\x01", path)
    except (BlockingIOError, InterruptedError):
        return True  # its queue is full: it has wake-ups pending already
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True
    return True


_local = threading.local()


def _sender() -> socket.socket:
    """This thread's unbound, non-blocking datagram socket used to send wake-ups."""
    sock: socket.socket | None = getattr(_local, "sock", None)
    if sock is None or getattr(_local, "pid", None) != os.getpid():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        _local.sock = sock
        _local.pid = os.getpid()
    return sock


class WakeupChannel:
    """Sends wake-ups to the listeners in one directory, caching its listing between changes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._mtime_ns = -1
        self._scanned_at = 0.0
        self._names: list[str] = []

    def listen(self, topic: str = "") -> Listener:
        """A new listener for ``topic`` ("" hears every notify without a topic)."""
        return Listener(self.directory, topic)

    def notify(self, topic: str = "") -> None:
        """Wake every listener of ``topic``; never blocks and never raises."""
        prefix = _topic_prefix(topic)
        stale: list[str] = []
        for name in self._listing():
            if name.startswith(prefix):
                path = os.path.join(self.directory, name)
                if not _send(path):
                    stale.append(path)
        for path in stale:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _listing(self) -> list[str]:
        """The socket names in the directory, rescanned only when it changed (or may have)."""
        try:
            mtime_ns = os.stat(self.directory).st_mtime_ns
        except OSError:
            return []
        with self._lock:
            racy = self._scanned_at - mtime_ns / 1e9 < _RACY_WINDOW
            if mtime_ns == self._mtime_ns and not racy:
                return self._names
            scanned_at = time.time()
            try:
                names = os.listdir(self.directory)
            except OSError:
                names = []
            self._names, self._mtime_ns, self._scanned_at = names, mtime_ns, scanned_at
            return names
