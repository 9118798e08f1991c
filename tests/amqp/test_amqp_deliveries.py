"""How the AMQP broker turns the frame scanner's deliveries into ``Delivery`` values (no server:
the I/O thread's callback is called directly)."""

from __future__ import annotations

import logging

import pika.data
import pytest

from machinery._speedups import Delivered
from machinery.brokers.amqp import AMQPBroker
from machinery.brokers.amqp_acks import TAG_BITS
from machinery.brokers.amqp_topology import DELIVERIES_HEADER


class FakeChannel:
    """Records what the broker sends back on the consuming channel."""

    def __init__(self) -> None:
        self.rejected: list[tuple[int, bool]] = []

    def basic_reject(self, tag: int, requeue: bool = True) -> None:
        self.rejected.append((tag, requeue))


@pytest.fixture
def broker() -> AMQPBroker:
    b = AMQPBroker("amqp://guest:guest@127.0.0.1:1/", default_queue="jobs")  # never connects
    b.consumers._consumer_queue["ctag-1"] = "jobs"  # as if consuming "jobs" under that tag
    b.connection.consuming = FakeChannel()  # type: ignore[assignment]
    return b


def table(headers: dict[str, object]) -> bytes:
    """An AMQP field table as it stands in a content header (with its 4-byte length)."""
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, headers)  # type: ignore[arg-type]
    return b"".join(pieces)


def buffered(broker: AMQPBroker) -> list[tuple[str, bytes, int, int, int, dict[str, str]]]:
    """What ``fetch`` would take from the buffer now (taken), sorted."""
    taken = broker.buffer.take(frozenset({"jobs"}), 100, 0.0, frozenset({"jobs"}))
    return sorted((d.queue, d.body, d.tag, d.delivery_count, d.priority, dict(d.headers)) for d in taken)


def test_a_batch_enters_the_fetch_buffer_with_counts_priorities_and_user_headers(broker: AMQPBroker) -> None:
    """Deliveries of one read are buffered together: a redelivery counts 2, the deliveries header
    adds the earlier ones, internal headers are dropped and user headers kept as text."""
    batch: list[Delivered] = [
        ("ctag-1", 1, False, 0, None, b"plain"),
        ("ctag-1", 2, True, 7, None, b"again"),
        ("ctag-1", 3, False, 0, table({"trace": "abc", DELIVERIES_HEADER: 3, "raw": b"bytes"}), b"counted"),
    ]
    broker.consumers.on_deliveries(batch)
    gen = broker.connection.generation << TAG_BITS
    assert buffered(broker) == [
        ("jobs", b"again", gen | 2, 2, 7, {}),
        ("jobs", b"counted", gen | 3, 4, 0, {"trace": "abc", "raw": "bytes"}),
        ("jobs", b"plain", gen | 1, 1, 0, {}),
    ]
    assert buffered(broker) == []


def test_a_delivery_for_a_consumer_not_ours_is_given_back(broker: AMQPBroker) -> None:
    """A delivery for a cancelled (unknown) consumer tag is rejected with requeue, not buffered."""
    broker.consumers.on_deliveries([("ctag-gone", 9, False, 0, None, b"x")])
    assert buffered(broker) == []
    assert broker.connection.consuming.rejected == [(9, True)]  # type: ignore[union-attr]


def test_unreadable_headers_do_not_lose_the_message(broker: AMQPBroker, caplog: pytest.LogCaptureFixture) -> None:
    """A header table that cannot be decoded is logged, and the message is delivered without it."""
    bad = b"\x00\x00\x00\x05\x03abcZ"  # a field of an unknown type
    with caplog.at_level(logging.WARNING, logger="machinery.brokers.amqp"):
        broker.consumers.on_deliveries([("ctag-1", 4, False, 0, bad, b"body")])
    assert buffered(broker) == [("jobs", b"body", (broker.connection.generation << TAG_BITS) | 4, 1, 0, {})]
    assert "cannot be read" in caplog.text
