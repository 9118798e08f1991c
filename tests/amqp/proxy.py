"""A small TCP proxy on loopback that a test owns, to cut a client's connection to RabbitMQ
without touching the shared server."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time

__all__ = ["TCPProxy"]


class TCPProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream``; ``cut()`` closes every connection and refuses
    new ones for a moment, as a network failure would. With ``chunks`` (a seed), what the server
    sends reaches the client in random pieces of 1 to 700 bytes with pauses between them, so that
    frames arrive split at every kind of boundary."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5672), *, chunks: int | None = None) -> None:
        self.upstream = upstream
        self._random = random.Random(chunks) if chunks is not None else None
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        self.connections = 0
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def url(self, user: str = "guest", password: str = "guest") -> str:
        """The AMQP URL that reaches RabbitMQ through this proxy."""
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/"

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        return listener

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
                self.connections += 1
            for a, b, split in ((client, server, False), (server, client, self._random is not None)):
                threading.Thread(target=self._pump, args=(a, b, split), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, split: bool) -> None:
        pick = self._random
        if split:
            sink.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while data := source.recv(65536):
                if not split or pick is None:
                    sink.sendall(data)
                    continue
                at = 0
                while at < len(data):
                    size = pick.randint(1, 700)
                    sink.sendall(data[at:at + size])
                    at += size
                    time.sleep(0.0002)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self, refuse_for: float = 1.0) -> None:
        """Close all connections, refuse new ones for ``refuse_for`` seconds, then accept again."""
        with self._lock:
            self._listener.close()
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        time.sleep(refuse_for)
        with self._lock:
            if self._closed:
                return
            self._listener = self._listen(self.port)
            threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def close(self) -> None:
        """Stop forwarding for good."""
        with self._lock:
            self._closed = True
            self._listener.close()
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            s.close()
