"""A pika ``SelectConnection`` that sends everything written in one pass of the I/O loop with one
``socket.send``.

pika hands every frame to its transport separately (a publish is three frames, every ack one), and
the transport sends each with its own syscall on the next pass of the loop, after turning the
writability watcher on and off. Here frames are collected while the loop runs callbacks and joined
at the end of the pass; on a plain socket with nothing queued they are sent at once, so a follow-up
publish or an ack leaves without waiting for another poll. On a TLS socket, on a partial send or
when pika still holds unsent data, the rest goes through pika's transport as before (order kept).
``hold_while_running`` lets the loop's lock be taken by other threads only while the loop polls.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pika
from pika.adapters.select_connection import IOLoop, PollPoller

__all__ = ["CoalescingConnection", "hold_while_running"]


class CoalescingConnection(pika.SelectConnection):
    """``SelectConnection`` whose outgoing frames are joined and sent once per I/O loop pass."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._outgoing: list[bytes] = []
        super().__init__(*args, **kwargs)

    def _adapter_emit_data(self, data: bytes) -> None:
        """(I/O thread) Collect ``data``; the first frame of a pass schedules the flush."""
        out = self._outgoing
        out.append(data)
        if len(out) == 1:
            self.ioloop.call_later(0, self._flush_outgoing)

    def _flush_outgoing(self) -> None:
        """(I/O thread) Send the collected frames: directly when possible, else through pika."""
        out = self._outgoing
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        transport: Any = getattr(self, "_transport", None)
        if transport is None:
            return  # the connection is gone; what it would have sent is void with it
        sock = getattr(transport, "_sock", None)
        if (type(sock) is socket.socket and not getattr(transport, "_tx_buffers", True)
                and getattr(transport, "_state", None) == getattr(transport, "_STATE_ACTIVE", 0)):
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # pika's own send meets the same error and aborts the connection
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)


class _UnlockedWhilePolling:
    """An ``epoll``/``poll`` object whose ``poll`` runs with the I/O loop's lock released."""

    def __init__(self, inner: Any, lock: threading.Lock) -> None:
        self._inner = inner
        self._lock = lock

    def poll(self, timeout: float | None = None) -> Any:
        self._lock.release()
        try:
            return self._inner.poll(timeout)
        finally:
            self._lock.acquire()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def hold_while_running(ioloop: IOLoop, lock: threading.Lock) -> bool:
    """Make ``lock`` held by the I/O thread whenever it is not waiting in ``poll``, so that another
    thread that takes it may drive pika itself while the loop sleeps. False when this pika's poller
    cannot be wrapped (then only the I/O thread may touch pika)."""
    poller = getattr(ioloop, "_poller", None)
    create = getattr(poller, "_create_poller", None)
    if not isinstance(poller, PollPoller) or create is None:
        return False
    poller.__dict__["_create_poller"] = lambda: _UnlockedWhilePolling(create(), lock)
    return True
