"""A small TCP proxy on loopback that a test owns, to cut a client's connection to RabbitMQ
without touching the shared server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

__all__ = ["TCPProxy"]


class TCPProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream``; ``cut()`` closes every connection and refuses
    new ones for a moment, as a network failure would."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self.upstream = upstream
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
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
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
