"""Dead letters on every broker: listed with why, when and after how many deliveries, requeued
(by id or all) and purged. Part of the broker contract: every broker in ``BROKER_FACTORIES``
implements ``DeadLetterStore``."""

from __future__ import annotations

import time

from machinery.brokers.base import Broker, dead_letter_queue
from machinery.brokers.dead_letters import DEAD_HEADERS, DeadLetterStore
from tests.transport.conftest import MakeBroker


def _dead_letter(broker: Broker, queue: str, body: bytes, reason: str, *, deliveries: int = 1) -> None:
    broker.publish(queue, body, headers={"origin": "test"})
    for _ in range(deliveries - 1):
        [delivery] = broker.fetch([queue], 1, 5.0)
        broker.nack(delivery)
    [delivery] = broker.fetch([queue], 1, 5.0)
    assert delivery.body == body
    broker.dead_letter(delivery, reason)


def _store(broker: Broker) -> DeadLetterStore:
    assert isinstance(broker, DeadLetterStore)
    return broker


def test_dead_letters_are_listed_with_reason_time_and_delivery_count_and_stay(
    make_broker: MakeBroker, queue: str
) -> None:
    broker = make_broker()
    before = time.time()
    _dead_letter(broker, queue, b"first", "cannot decode", deliveries=3)
    _dead_letter(broker, queue, b"second", "not registered")
    listed = _store(broker).dead_letters(queue)
    assert [(m.body, m.reason, m.delivery_count, m.queue) for m in listed] == [
        (b"first", "cannot decode", 3, queue), (b"second", "not registered", 1, queue)]
    for message in listed:
        assert message.dead_at is not None and before - 1 <= message.dead_at <= time.time() + 1
        assert message.headers["origin"] == "test"
    assert len({m.id for m in listed}) == 2
    again = _store(broker).dead_letters(queue)
    assert [m.id for m in again] == [m.id for m in listed]
    assert broker.depth(queue).dead == 2
    assert [m.body for m in _store(broker).dead_letters(queue, limit=1)] == [b"first"]


def test_requeue_by_id_moves_only_that_one_back_without_its_dead_headers(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    _dead_letter(broker, queue, b"keep", "bad")
    _dead_letter(broker, queue, b"again", "worth another try", deliveries=2)
    target = next(m for m in _store(broker).dead_letters(queue) if m.body == b"again")
    assert _store(broker).requeue_dead(queue, [target.id, "no-such-id"]) == [target.id]
    [delivery] = broker.fetch([queue], 5, 5.0)
    assert delivery.body == b"again"
    assert delivery.delivery_count == 1
    assert delivery.headers.get("origin") == "test"
    assert not DEAD_HEADERS & set(delivery.headers)
    broker.ack(delivery)
    assert [m.body for m in _store(broker).dead_letters(queue)] == [b"keep"]


def test_requeue_all_empties_the_dead_letter_queue(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    for body in (b"a", b"b", b"c"):
        _dead_letter(broker, queue, body, "bad")
    assert len(_store(broker).requeue_dead(queue)) == 3
    assert _store(broker).dead_letters(queue) == []
    bodies: list[bytes] = []
    while len(bodies) < 3 and (got := broker.fetch([queue], 3, 5.0)):
        bodies += [d.body for d in got]
        broker.ack_many(got)
    assert sorted(bodies) == [b"a", b"b", b"c"]
    assert _store(broker).requeue_dead(queue) == []


def test_purge_deletes_the_dead_letters_and_nothing_else(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    _dead_letter(broker, queue, b"x", "bad")
    _dead_letter(broker, queue, b"y", "bad")
    broker.publish(queue, b"live")
    assert _store(broker).purge_dead(queue) == 2
    assert _store(broker).dead_letters(queue) == []
    assert broker.depth(queue).dead == 0
    [delivery] = broker.fetch([queue], 1, 5.0)
    assert delivery.body == b"live"
    broker.ack(delivery)
    assert broker.fetch([dead_letter_queue(queue)], 1, 0.3) == []

