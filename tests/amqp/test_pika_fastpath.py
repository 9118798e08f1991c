"""The pika fast path (``_pika_fastpath``): active with the pinned pika, checked at start-up, turned
off by configuration or by a pika that lacks what it uses; and how it sends what pika writes (frames
of one I/O loop pass joined, order kept)."""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from machinery.brokers import _pika_fastpath
from machinery.brokers._pika_fastpath import FastPathConnection
from machinery.brokers.amqp import AMQPBroker
from machinery.brokers.base import OutgoingMessage
from machinery.config import Config
from tests.support.amqp import forget_at_exit, new_broker
from tests.support.names import unique_name


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


def connection_with(transport: FakeTransport | None, frames: list[bytes]) -> FastPathConnection:
    conn = FastPathConnection.__new__(FastPathConnection)  # no server: only the sending part
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
    conn.flush()
    assert receive(pair[1], 16) == b"methodheaderbody"
    assert transport.written == []
    assert conn._outgoing == []


def test_frames_queue_behind_data_pika_has_not_sent_yet(pair: tuple[socket.socket, socket.socket]) -> None:
    transport = FakeTransport(pair[0])
    transport._tx_buffers.append(b"earlier")
    conn = connection_with(transport, [b"a", b"b"])
    conn.flush()
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
    conn.flush()
    assert len(transport.written) == 1
    rest = transport.written[0]
    assert rest.endswith(b"end")
    assert 0 < len(rest) < len(big) + 3


def test_frames_of_a_lost_connection_are_dropped() -> None:
    conn = connection_with(None, [b"frame"])
    conn.flush()
    assert conn._outgoing == []


# ----------------------------------------------------------------- the start-up check and the switch


def test_the_installed_pika_has_every_internal_the_fast_path_uses() -> None:
    """pika is pinned to the releases this check passed on: if it fails, a pika release changed an
    internal, and production would silently run the slower public path. Fix the fast path for it
    (or narrow the pin) before releasing."""
    assert _pika_fastpath.problems() == ()
    assert _pika_fastpath.available()


def test_the_fast_path_is_active_on_a_live_connection(rabbitmq_url: str) -> None:
    """With the pinned pika, a broker reads deliveries and confirms with the frame scanner and
    publishes from the publishing thread while the I/O thread sleeps."""
    token = unique_name("fast")
    broker = new_broker(rabbitmq_url, token)
    try:
        broker.publish(broker.default_queue, b"x")
        assert broker.fetch([broker.default_queue], 1, 10.0)
        assert broker.connection.scanning, "deliveries and confirms are read by pika: the fast path is off"
        assert broker.connection.direct_publishing, "only the I/O thread publishes: the fast path is off"
    finally:
        broker.close()


def test_configuration_turns_the_fast_path_off(rabbitmq_url: str) -> None:
    queue = unique_name("q")
    config = Config(broker_url=rabbitmq_url, exchange=unique_name("ex"), default_queue=queue, binding_key=queue,
                    amqp_fast_path=False)
    forget_at_exit(rabbitmq_url, config.exchange, (queue,))
    broker = AMQPBroker.from_config(config)
    try:
        broker.publish(queue, b"x")
        [delivery] = broker.fetch([queue], 1, 10.0)
        broker.ack(delivery)
        assert not broker.connection.scanning
        assert not broker.connection.direct_publishing
    finally:
        broker.close()


def test_a_pika_without_an_internal_is_reported_once_and_the_public_path_used(
    rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A pika whose ``Connection._process_frame`` changed shape (as the check sees it): one warning
    naming it, and a broker that still publishes and consumes, through pika's public API."""

    class Changed(pika.connection.Connection):
        def _process_frame(self, frame_value: Any, extra: Any = None) -> None:
            raise AssertionError("never called")

    original = _pika_fastpath.problems
    monkeypatch.setattr(_pika_fastpath, "_Connection", Changed)
    original.cache_clear()
    token = unique_name("nofast")
    broker = new_broker(rabbitmq_url, token)
    try:
        with caplog.at_level(logging.WARNING, logger="machinery.brokers.amqp"):
            assert not _pika_fastpath.available()
            assert not _pika_fastpath.available()
            broker.publish_many([OutgoingMessage(broker.default_queue, b"%d" % i) for i in range(3)])
            got: list[bytes] = []
            while len(got) < 3:
                batch = broker.fetch([broker.default_queue], 3, 10.0)
                assert batch
                got += [d.body for d in batch]
                broker.ack_many(batch)
        assert sorted(got) == [b"0", b"1", b"2"]
        assert not broker.connection.scanning
        assert not broker.connection.direct_publishing
        warnings = [r for r in caplog.records if "AMQP fast path" in r.getMessage()]
        assert len(warnings) == 1
        assert "Connection._process_frame(self, frame_value)" in warnings[0].getMessage()
    finally:
        broker.close()
        monkeypatch.undo()
        original.cache_clear()


def _deliver(body: bytes, channel: int = 1) -> bytes:
    """A Basic.Deliver on ``channel`` with a content header (no properties) and one body frame."""
    def frame(kind: int, payload: bytes) -> bytes:
        return bytes([kind]) + channel.to_bytes(2, "big") + len(payload).to_bytes(4, "big") + payload + b"\xce"

    method = (b"\x00\x3c\x00\x3c" + b"\x03ctg" + (7).to_bytes(8, "big") + b"\x00" + b"\x00" + b"\x01q")
    header = b"\x00\x3c\x00\x00" + len(body).to_bytes(8, "big") + b"\x00\x00"
    return frame(1, method) + frame(2, header) + frame(3, body)


def test_a_delivery_cut_short_is_recognised_as_waiting_for_more_bytes() -> None:
    whole = _deliver(b"x" * 50)
    method_end = 7 + int.from_bytes(whole[3:7], "big") + 1
    for cut in range(method_end, len(whole)):  # every cut after the method frame
        assert _pika_fastpath._delivery_incomplete(whole[:cut], 0, method_end, cut, 1), cut
    assert not _pika_fastpath._delivery_incomplete(whole, 0, method_end, len(whole), 2)  # another channel
    heartbeat = b"\x08\x00\x00\x00\x00\x00\x00\xce"
    assert not _pika_fastpath._delivery_incomplete(heartbeat + whole, 0, 8, 8 + len(whole), 1)


def test_deliveries_split_between_reads_are_still_read_by_the_scanner(rabbitmq_url: str) -> None:
    """What RabbitMQ sends arrives in random pieces (a proxy splits it): a delivery whose end is in
    the next read waits for it and is read by the frame scanner, never by pika frame by frame."""
    from tests.amqp.proxy import TCPProxy

    proxy = TCPProxy(chunks=11)
    token = unique_name("split")
    broker = new_broker(proxy.url(), token, prefetch_count=50)
    slow: list[int] = []
    original = broker.consumers.on_message

    def counting(*args: Any) -> None:
        slow.append(1)
        original(*args)

    broker.consumers.__dict__["on_message"] = counting
    queue = broker.default_queue
    try:
        broker.publish_many([OutgoingMessage(queue, b"%04d" % i + b"y" * (i * 37 % 900)) for i in range(200)])
        got: list[bytes] = []
        while len(got) < 200:
            batch = broker.fetch([queue], 50, 5.0)
            assert batch, f"only {len(got)} of 200 delivered"
            got += [d.body[:4] for d in batch]
            broker.ack_many(batch)
        assert sorted(got) == [b"%04d" % i for i in range(200)]
        assert slow == []
    finally:
        broker.close()
        proxy.close()
