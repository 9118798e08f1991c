"""The AMQP broker's fetch buffer on its own (no server): priority order, arrival order within a
priority, taking only the queues asked for, giving a queue's deliveries back, counting what is in
flight, and settlements from a lost connection."""

from __future__ import annotations

import threading
import time

import pytest

from machinery.brokers.amqp_acks import TAG_BITS
from machinery.brokers.amqp_buffer import DeliveryBuffer
from machinery.brokers.base import Delivery

EVERY = frozenset({"a", "b"})


def delivery(queue: str, tag: int, priority: int = 0, generation: int = 0) -> Delivery:
    return Delivery(queue, f"{queue}{tag}".encode(), (generation << TAG_BITS) | tag, 1, priority)


def filled(*deliveries: Delivery) -> DeliveryBuffer:
    buffer = DeliveryBuffer()
    for d in deliveries:
        buffer.add(d)
    buffer.hand_over()
    return buffer


def bodies(deliveries: list[Delivery]) -> list[bytes]:
    return [d.body for d in deliveries]


def test_the_highest_priority_comes_first_then_the_order_of_arrival() -> None:
    buffer = filled(delivery("a", 1), delivery("a", 2, priority=5), delivery("a", 3), delivery("a", 4, priority=5),
                    delivery("a", 5, priority=9))
    assert bodies(buffer.take(EVERY, 10, 0.0, EVERY)) == [b"a5", b"a2", b"a4", b"a1", b"a3"]


def test_deliveries_handed_over_later_queue_behind_earlier_ones_of_their_priority() -> None:
    buffer = filled(delivery("a", 1), delivery("a", 2))
    assert bodies(buffer.take(EVERY, 1, 0.0, EVERY)) == [b"a1"]
    buffer.add(delivery("a", 3))
    buffer.add(delivery("a", 4, priority=1))
    buffer.hand_over()
    assert bodies(buffer.take(EVERY, 10, 0.0, EVERY)) == [b"a4", b"a2", b"a3"]


def test_only_the_queues_asked_for_are_taken_and_the_others_keep_their_order() -> None:
    buffer = filled(delivery("a", 1), delivery("b", 2), delivery("a", 3), delivery("b", 4), delivery("a", 5))
    assert bodies(buffer.take(frozenset({"b"}), 10, 0.0, EVERY)) == [b"b2", b"b4"]
    assert bodies(buffer.take(frozenset({"a"}), 2, 0.0, EVERY)) == [b"a1", b"a3"]
    assert buffer.ready("a") == 1
    assert bodies(buffer.take(EVERY, 10, 0.0, EVERY)) == [b"a5"]


def test_a_take_waits_for_a_hand_over_and_a_wake_ends_the_wait() -> None:
    buffer = DeliveryBuffer()
    got: list[Delivery] = []
    taker = threading.Thread(target=lambda: got.extend(buffer.take(EVERY, 5, time.monotonic() + 10, EVERY)))
    taker.start()
    deadline = time.monotonic() + 5
    while not buffer.waited_for() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert buffer.waited_for()
    buffer.add(delivery("a", 1))
    buffer.hand_over()
    taker.join(5)
    assert bodies(got) == [b"a1"]
    started = time.monotonic()
    waker = threading.Timer(0.1, buffer.wake)
    waker.start()
    assert buffer.take(EVERY, 5, time.monotonic() + 10, EVERY) == []
    assert time.monotonic() - started < 5


def test_giving_a_queue_back_removes_only_its_deliveries() -> None:
    buffer = filled(delivery("a", 1), delivery("b", 2, priority=3), delivery("a", 3, priority=3), delivery("b", 4))
    assert sorted(bodies(buffer.give_back("b"))) == [b"b2", b"b4"]
    assert (buffer.ready("a"), buffer.ready("b")) == (2, 0)
    assert bodies(buffer.take(EVERY, 10, 0.0, EVERY)) == [b"a3", b"a1"]


def test_taken_deliveries_are_in_flight_until_settled_and_old_ones_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    buffer = filled(delivery("a", 1, generation=1), delivery("a", 2, generation=1))
    taken = buffer.take(EVERY, 10, 0.0, EVERY)
    assert buffer.in_flight("a") == 2
    assert buffer.settled(taken[:1], generation=1) == [taken[0].tag]
    assert buffer.in_flight("a") == 1
    assert buffer.settled(taken[1:], generation=2) == []  # its connection is gone
    assert "lost connection" in caplog.text


def test_a_lost_connection_empties_the_buffer() -> None:
    buffer = filled(delivery("a", 1), delivery("a", 2, priority=4))
    buffer.add(delivery("a", 3))
    buffer.lost()
    buffer.hand_over()
    assert buffer.take(EVERY, 10, 0.0, EVERY) == []
    assert buffer.ready("a") == 0
