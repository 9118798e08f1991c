"""How the AMQP connection sends what pika writes: frames of one I/O loop pass joined, order kept."""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Iterator

import pytest

from machinery.brokers.amqp_socket import CoalescingConnection


class FakeTransport:
    """The parts of pika's plaintext transport that the connection looks at, on a real socket."""

    _STATE_ACTIVE = 1

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._state = self._STATE_ACTIVE
        self._tx_buffers: deque[bytes] = deque()
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self._tx_buffers.append(data)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.settimeout(2.0)
    yield a, b
    a.close()
    b.close()


def connection_with(transport: FakeTransport | None, frames: list[bytes]) -> CoalescingConnection:
    conn = CoalescingConnection.__new__(CoalescingConnection)  # no server: only the sending part
    conn._outgoing = list(frames)
    conn.__dict__["_transport"] = transport
    return conn


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


def test_the_frames_of_one_pass_leave_in_order_straight_on_the_socket(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    transport = FakeTransport(pair[0])
    conn = connection_with(transport, [b"method", b"header", b"body"])
    conn._flush_outgoing()
    assert receive(pair[1], 16) == b"methodheaderbody"
    assert transport.written == []
    assert conn._outgoing == []


def test_frames_queue_behind_data_pika_has_not_sent_yet(pair: tuple[socket.socket, socket.socket]) -> None:
    transport = FakeTransport(pair[0])
    transport._tx_buffers.append(b"earlier")
    conn = connection_with(transport, [b"a", b"b"])
    conn._flush_outgoing()
    assert transport.written == [b"ab"]
    pair[1].setblocking(False)
    with pytest.raises(BlockingIOError):
        pair[1].recv(10)


def test_what_the_socket_cannot_take_now_goes_to_pika_to_send_later(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    transport = FakeTransport(pair[0])
    big = b"x" * (8 << 20)  # more than a socket buffer holds
    conn = connection_with(transport, [big, b"end"])
    conn._flush_outgoing()
    assert len(transport.written) == 1
    rest = transport.written[0]
    assert rest.endswith(b"end")
    assert 0 < len(rest) < len(big) + 3


def test_frames_of_a_lost_connection_are_dropped() -> None:
    conn = connection_with(None, [b"frame"])
    conn._flush_outgoing()
    assert conn._outgoing == []
