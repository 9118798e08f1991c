"""A pika ``SelectConnection`` that sends everything written in one pass of the I/O loop with one
``socket.send``.

pika hands every frame to its transport separately (a publish is three frames, every ack one), and
the transport sends each with its own syscall on the next pass of the loop, after turning the
writability watcher on and off. Here frames are collected while the loop runs callbacks and joined
at the end of the pass; on a plain socket with nothing queued they are sent at once, so a follow-up
publish or an ack leaves without waiting for another poll. On a TLS socket, on a partial send or
when pika still holds unsent data, the rest goes through pika's transport as before (order kept).
``hold_while_running`` lets the loop's lock be taken by other threads only while the loop polls.
``PublishFrames`` builds a publish's frames directly, with what is constant cached.

Incoming, deliveries (a ``Basic.Deliver`` with its content) and publisher confirms are read by the
hot path's ``scan_frames`` and handed to ``FastFrames``' callbacks in batches, without pika's frame,
method and property objects; every other frame, and any that the scanner does not take, goes
through pika as before, in order.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import pika
import pika.connection
from pika import frame
from pika.adapters.select_connection import IOLoop, PollPoller
from pika.spec import Basic, BasicProperties

from machinery._speedups import Confirmed, Delivered, scan_frames

__all__ = ["PERSISTENT", "CoalescingConnection", "FastFrames", "PublishFrames", "hold_while_running"]

#: The properties of a plain persistent message; ``PublishFrames`` encodes them once.
PERSISTENT = BasicProperties(delivery_mode=2)

_FRAME_HEAD = struct.Struct(">BHI")
_CONTENT_HEAD = struct.Struct(">HxxQ")
_FRAME_END = b"\xce"
_FRAME_HEADER = 2
_FRAME_BODY = 3
_MAX_CACHED = 1024


class FastFrames:
    """Where ``CoalescingConnection`` hands the deliveries and confirms it reads itself."""

    __slots__ = ("confirm_channel", "deliver_channel", "on_confirms", "on_deliveries")

    def __init__(
        self,
        deliver_channel: int,
        on_deliveries: Callable[[list[Delivered]], None],
        confirm_channel: int,
        on_confirms: Callable[[list[Confirmed]], None],
    ) -> None:
        self.deliver_channel = deliver_channel
        self.on_deliveries = on_deliveries
        self.confirm_channel = confirm_channel
        self.on_confirms = on_confirms


#: pika's own reading of incoming data, and its handling of one frame (both private; without them,
#: pika reads everything itself).
_pika_read: Any = getattr(pika.connection.Connection, "_on_data_available", None)
_pika_process: Any = getattr(pika.connection.Connection, "_process_frame", None)


class CoalescingConnection(pika.SelectConnection):
    """``SelectConnection`` whose outgoing frames are joined and sent once per I/O loop pass, and
    whose deliveries and confirms are read by ``scan_frames`` once ``fast`` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._outgoing: list[bytes] = []
        self.fast: FastFrames | None = None
        """Set by the owner once its consuming and confirming channels are open (when ``can_scan``);
        None hands every frame to pika."""
        super().__init__(*args, **kwargs)

    #: Whether this pika lets ``fast`` take over reading.
    can_scan = callable(_pika_read) and callable(_pika_process)

    def _on_data_available(self, data_in: bytes) -> None:
        """(I/O thread) Read what arrived: runs of deliveries and confirms through ``scan_frames``,
        any other frame through pika, in the order they came."""
        fast = self.fast
        state: Any = self
        if fast is None:
            _pika_read(self, data_in)
            return
        buffered: bytes = state._frame_buffer
        data = buffered + data_in if buffered else data_in
        state._frame_buffer = b""
        end = len(data)
        at = 0
        while at < end:
            used, frames, deliveries, confirms = scan_frames(data, at, fast.deliver_channel, fast.confirm_channel)
            if used:
                at += used
                state.bytes_received += used
                state.frames_received += frames
                if confirms:
                    fast.on_confirms(confirms)
                if deliveries:
                    fast.on_deliveries(deliveries)
            elif end - at >= 7:
                stop = at + 8 + int.from_bytes(data[at + 3:at + 7], "big")
                if stop > end:
                    break
                consumed, value = frame.decode_frame(data[at:stop])
                if value is None:  # pika reads it as incomplete: leave it to pika's own loop
                    break
                at += consumed
                state.bytes_received += consumed
                _pika_process(self, value)
            else:
                break
            if self.is_closed:
                return
            if self.fast is not fast:
                fast = self.fast
                if fast is None:
                    break
        if at < end:
            _pika_read(self, data[at:])

    def _adapter_emit_data(self, data: bytes) -> None:
        """(I/O thread) Collect ``data``; the first frame of a pass schedules the flush."""
        out = self._outgoing
        out.append(data)
        if len(out) == 1:
            self.ioloop.call_later(0, self._flush_outgoing)

    def emit_built(self, data: bytes) -> None:
        """(I/O thread) Send frames built outside pika (``PublishFrames``), counted in ``bytes_sent``
        as pika counts its own (its heartbeat checker reads it)."""
        stats: Any = self
        stats.bytes_sent += len(data)
        self._adapter_emit_data(data)

    @property
    def body_max_length(self) -> int:
        """The largest body frame payload negotiated with the server."""
        tuned: Any = self
        return int(tuned._body_max_length)

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
    vars(poller)["_create_poller"] = lambda: _UnlockedWhilePolling(create(), lock)
    return True


class PublishFrames:
    """The wire bytes of a mandatory Basic.Publish with its content header and body frames, built
    without pika's per-call objects: the method frame is cached per exchange and routing key, the
    encoded ``PERSISTENT`` properties once; other properties are encoded each time."""

    def __init__(self, channel_number: int, body_max: int) -> None:
        self._channel = channel_number
        self._body_max = body_max
        self._methods: dict[tuple[str, str], bytes] = {}
        self._persistent = b"".join(PERSISTENT.encode())

    def build(self, exchange: str, routing_key: str, body: bytes, properties: BasicProperties) -> bytes:
        """All frames of one publish, joined; raises as pika would for a field it cannot encode."""
        key = (exchange, routing_key)
        method = self._methods.get(key)
        if method is None:
            publish = Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True)
            method = frame.Method(self._channel, publish).marshal()
            if len(self._methods) >= _MAX_CACHED:
                self._methods.clear()
            self._methods[key] = method
        props = self._persistent if properties is PERSISTENT else b"".join(properties.encode())
        channel = self._channel
        size = len(body)
        header = _CONTENT_HEAD.pack(BasicProperties.INDEX, size) + props
        parts = [method, _FRAME_HEAD.pack(_FRAME_HEADER, channel, len(header)), header, _FRAME_END]
        step = self._body_max
        for start in range(0, size, step):
            chunk = body[start:start + step]
            parts += (_FRAME_HEAD.pack(_FRAME_BODY, channel, len(chunk)), chunk, _FRAME_END)
        return b"".join(parts)
