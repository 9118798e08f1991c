"""Every use of pika's private API, in one place: the AMQP fast path.

pika hands every outgoing frame to its transport separately (a publish is three frames, every ack
one), and reads every incoming frame into method and property objects. The fast path changes both:

- ``FastPathConnection`` collects the frames written during one pass of the I/O loop and sends them
  with one ``socket.send`` at the end of the pass (through pika's transport when the socket cannot
  take them all, or pika still holds unsent data, so order is kept); frames built outside pika
  (``amqp_publish_frames``) join them;
- it reads runs of deliveries and publisher confirms with the hot path's ``scan_frames`` and hands
  them to ``ScannedFrames``' callbacks in batches, every other frame through pika, in order; a
  delivery cut by the end of a read is kept until the next read completes it;
- ``hold_while_running`` makes a lock held by the I/O thread except while it waits in ``poll``, so
  that another thread holding it may drive pika while the loop sleeps.

All of that needs pika internals: ``Connection._on_data_available``, ``_process_frame``,
``_frame_buffer`` and ``_body_max_length`` (set on tuning); ``BaseConnection._adapter_emit_data`` and
``_transport``; the plaintext transport's ``_sock``, ``_tx_buffers``, ``_state`` and
``_STATE_ACTIVE``; the I/O loop's ``_poller`` and the poller's ``_create_poller``. ``problems()``
checks, once, that each is there with the shape used here. When one is not (a pika release changed
it), a warning is logged once and the AMQP broker uses pika's public path: ``SelectConnection``,
``Channel.basic_publish`` and pika reading every frame. ``Config.amqp_fast_path = False`` chooses the
public path as well. pika is pinned in ``pyproject.toml`` to the releases this check was run on, and
``tests/amqp/test_pika_fastpath.py`` fails when the fast path is not active with the installed pika.
"""

from __future__ import annotations

import functools
import inspect
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import pika
import pika.connection
from pika import frame
from pika.adapters import base_connection
from pika.adapters.select_connection import IOLoop, PollPoller
from pika.adapters.utils import io_services_utils

from machinery._speedups import Confirmed, Delivered, scan_frames

__all__ = ["FastPathConnection", "ScannedFrames", "available", "hold_while_running", "problems"]

log = logging.getLogger("machinery.brokers.amqp")

_Connection: Any = pika.connection.Connection
_Transport: Any = getattr(io_services_utils, "_AsyncTransportBase", None)


def _parameters(function: object) -> list[str] | None:
    """The parameter names of ``function``, or None when it is not a plain function."""
    if not inspect.isfunction(function):
        return None
    return list(inspect.signature(function).parameters)


def _assigns(function: object, *names: str) -> list[str]:
    """Those of ``names`` that the code of ``function`` never names (so never sets)."""
    code = getattr(function, "__code__", None)
    used = set(code.co_names) if code is not None else set()
    return [name for name in names if name not in used]


def _check() -> list[str]:
    found: list[str] = []

    def expect(what: str, ok: bool) -> None:
        if not ok:
            found.append(what)

    expect("Connection._on_data_available(self, data_in)",
           _parameters(getattr(_Connection, "_on_data_available", None)) == ["self", "data_in"])
    expect("Connection._process_frame(self, frame_value)",
           _parameters(getattr(_Connection, "_process_frame", None)) == ["self", "frame_value"])
    for name in _assigns(getattr(_Connection, "_init_connection_state", None), "_frame_buffer", "bytes_sent",
                         "bytes_received", "frames_received"):
        expect(f"Connection._init_connection_state sets {name}", False)
    for name in _assigns(getattr(_Connection, "_on_connection_tune", None), "_body_max_length"):
        expect(f"Connection._on_connection_tune sets {name}", False)
    expect("BaseConnection._adapter_emit_data(self, data)",
           _parameters(getattr(base_connection.BaseConnection, "_adapter_emit_data", None)) == ["self", "data"])
    for name in _assigns(getattr(base_connection.BaseConnection, "__init__", None), "_transport"):
        expect(f"BaseConnection.__init__ sets {name}", False)
    expect("io_services_utils._AsyncTransportBase", isinstance(_Transport, type))
    if isinstance(_Transport, type):
        expect("_AsyncTransportBase._STATE_ACTIVE", isinstance(getattr(_Transport, "_STATE_ACTIVE", None), int))
        for name in _assigns(getattr(_Transport, "__init__", None), "_sock", "_tx_buffers", "_state"):
            expect(f"_AsyncTransportBase.__init__ sets {name}", False)
        expect("_AsyncTransportBase.write(self, data)", _parameters(getattr(_Transport, "write", None))
               == ["self", "data"])
    for name in _assigns(getattr(IOLoop, "__init__", None), "_poller"):
        expect(f"IOLoop.__init__ sets {name}", False)
    create = inspect.getattr_static(PollPoller, "_create_poller", None)
    expect("PollPoller._create_poller()", isinstance(create, staticmethod) and _parameters(create.__func__) == [])
    expect("frame.decode_frame(data_in)", _parameters(getattr(frame, "decode_frame", None)) == ["data_in"])
    return found


@functools.cache
def problems() -> tuple[str, ...]:
    """The pika internals the fast path needs that this pika lacks (or has in another shape); empty
    when the fast path can be used. Checked once; the first call with problems logs a warning."""
    found = tuple(_check())
    if found:
        log.warning("pika %s lacks internals the AMQP fast path uses (%s); using pika's public API (slower)",
                    getattr(pika, "__version__", "?"), "; ".join(found))
    return found


def available() -> bool:
    """Whether the fast path can be used with the installed pika (see ``problems``)."""
    return not problems()


class ScannedFrames:
    """Where ``FastPathConnection`` hands the deliveries and confirms it reads itself."""

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


def _delivery_incomplete(data: bytes, at: int, stop: int, end: int, channel: int) -> bool:
    """Whether the complete frame from ``at`` to ``stop`` is a ``Basic.Deliver`` on ``channel``
    whose content header or body frames have not all arrived by ``end`` (so ``scan_frames``
    stopped for want of bytes, not because it cannot read the delivery)."""
    if data[at] != 1 or int.from_bytes(data[at + 1:at + 3], "big") != channel or stop - at < 12:
        return False
    if data[at + 7:at + 11] != b"\x00\x3c\x00\x3c":  # Basic (60) . Deliver (60)
        return False
    if end - stop < 7:
        return True  # not even the content header's frame header yet
    header_stop = stop + 8 + int.from_bytes(data[stop + 3:stop + 7], "big")
    if header_stop > end:
        return True
    if header_stop - stop < 22 or data[stop] != 2:
        return False
    body_size = int.from_bytes(data[stop + 11:stop + 19], "big")
    # Body frames carry at least one byte each; all of them need at least body_size + 8 bytes.
    return end - header_stop < body_size + 8


class FastPathConnection(pika.SelectConnection):
    """``SelectConnection`` whose outgoing frames are joined and sent once per I/O loop pass, and
    whose deliveries and confirms are read by ``scan_frames`` once ``scanned`` is set. Use it only
    when ``available()``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._outgoing: list[bytes] = []
        self.direct = False
        """Set while a thread holding the loop's lock publishes, then calls ``flush`` itself."""
        self.scanned: ScannedFrames | None = None
        """Set by the owner once its consuming and confirming channels are open; None hands every
        frame to pika."""
        super().__init__(*args, **kwargs)

    # ----------------------------------------------------------------- reading

    def _on_data_available(self, data_in: bytes) -> None:
        """(I/O thread; overrides pika) Read what arrived: runs of deliveries and confirms through
        ``scan_frames``, any other frame through pika, in the order they came."""
        scanned = self.scanned
        state: Any = self
        if scanned is None:
            _Connection._on_data_available(self, data_in)
            return
        buffered: bytes = state._frame_buffer
        data = buffered + data_in if buffered else data_in
        state._frame_buffer = b""
        end = len(data)
        at = 0
        while at < end:
            used, frames, deliveries, confirms = scan_frames(data, at, scanned.deliver_channel,
                                                             scanned.confirm_channel)
            if used:
                at += used
                state.bytes_received += used
                state.frames_received += frames
                # Deliveries first: a task thread waiting for one wakes while confirms are read.
                if deliveries:
                    scanned.on_deliveries(deliveries)
                if confirms:
                    scanned.on_confirms(confirms)
            elif end - at >= 7:
                stop = at + 8 + int.from_bytes(data[at + 3:at + 7], "big")
                if stop > end:
                    break
                if _delivery_incomplete(data, at, stop, end, scanned.deliver_channel):
                    # The rest of this delivery is in the next read: keep it for the scanner
                    # rather than let pika read the delivery frame by frame.
                    state._frame_buffer = data[at:]
                    return
                consumed, value = frame.decode_frame(data[at:stop])
                if value is None:  # pika reads it as incomplete: leave it to pika's own loop
                    break
                at += consumed
                state.bytes_received += consumed
                _Connection._process_frame(self, value)
            else:
                break
            if self.is_closed:
                return
            if self.scanned is not scanned:
                scanned = self.scanned
                if scanned is None:
                    break
        if at < end:
            _Connection._on_data_available(self, data[at:])

    # ----------------------------------------------------------------- writing

    def _adapter_emit_data(self, data: bytes) -> None:
        """(I/O thread; overrides pika) Collect ``data``; the first frame of a pass schedules ``flush``."""
        out = self._outgoing
        out.append(data)
        if len(out) == 1 and not self.direct:
            self.ioloop.call_later(0, self.flush)

    def emit_built(self, data: bytes) -> None:
        """(I/O thread) Send frames built outside pika, counted in ``bytes_sent`` as pika counts its
        own (its heartbeat checker reads it)."""
        stats: Any = self
        stats.bytes_sent += len(data)
        self._adapter_emit_data(data)

    @property
    def body_max_length(self) -> int:
        """The largest body frame payload negotiated with the server."""
        tuned: Any = self
        return int(tuned._body_max_length)

    def flush(self) -> None:
        """Send the frames collected in this pass: straight on the socket when pika has nothing
        queued, else through pika's transport. Runs on the I/O thread, or on a thread that holds
        the loop's lock (``hold_while_running``) while the loop waits in ``poll``."""
        out = self._outgoing
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        transport: Any = getattr(self, "_transport", None)
        if transport is None:
            return  # the connection is gone; what it would have sent is void with it
        sock = transport._sock
        if type(sock) is socket.socket and not transport._tx_buffers and transport._state == transport._STATE_ACTIVE:
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
    thread that takes it may drive pika itself while the loop sleeps. False when the loop's poller
    is not a ``PollPoller`` (then only the I/O thread may touch pika)."""
    poller: Any = getattr(ioloop, "_poller", None)
    if not isinstance(poller, PollPoller):
        return False
    create = poller._create_poller  # type: ignore[attr-defined]
    vars(poller)["_create_poller"] = lambda: _UnlockedWhilePolling(create(), lock)
    return True

