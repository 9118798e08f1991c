"""The broker contract: every broker in ``factories.BROKER_FACTORIES`` must pass all of it.

Timing checks use generous bounds: "early" means well before a long timeout, "not before" allows
a little slack for coarse clocks.
"""

from __future__ import annotations

import threading
import time

from machinery.brokers.base import REASON_HEADER, Broker, Delivery, OutgoingMessage, QueueDepth, dead_letter_queue
from tests.transport.conftest import MakeBroker
from tests.transport.factories import BrokerFactory


def fetch_one(broker: Broker, queue: str, timeout: float = 5.0) -> bytes:
    deliveries = broker.fetch([queue], 1, timeout)
    assert len(deliveries) == 1, f"expected one message from {queue}, got {deliveries}"
    body = deliveries[0].body
    broker.ack(deliveries[0])
    return body


def test_published_message_is_fetched_with_its_body_and_headers(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    broker.publish(queue, b"hello", headers={"k": "v"})
    [delivery] = broker.fetch([queue], 10, 5.0)
    assert delivery.queue == queue
    assert delivery.body == b"hello"
    assert delivery.headers["k"] == "v"
    assert delivery.delivery_count == 1


def test_fetch_on_an_empty_queue_waits_for_its_timeout_then_returns_nothing(
    make_broker: MakeBroker, queue: str
) -> None:
    broker = make_broker()
    started = time.monotonic()
    assert broker.fetch([queue], 1, 0.3) == []
    assert time.monotonic() - started >= 0.25


def test_a_fetched_message_is_not_delivered_again_while_its_lease_holds(make_broker: MakeBroker, queue: str) -> None:
    first, second = make_broker(), make_broker()
    first.publish(queue, b"once")
    assert len(first.fetch([queue], 1, 5.0)) == 1
    assert second.fetch([queue], 1, 0.3) == []
    assert first.depth(queue).in_flight == 1


def test_an_acked_message_is_gone_for_good(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker(visibility_timeout=0.3)
    broker.publish(queue, b"done")
    [delivery] = broker.fetch([queue], 1, 5.0)
    broker.ack(delivery)
    time.sleep(0.5)
    assert broker.fetch([queue], 1, 0.2) == []
    assert broker.depth(queue) == QueueDepth(queue, 0, 0, 0, 0)


def test_ack_many_removes_every_message_of_the_batch_and_no_other(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    broker.publish_many([OutgoingMessage(queue, f"m{i}".encode()) for i in range(5)])
    deliveries: list[Delivery] = []
    while len(deliveries) < 5 and (got := broker.fetch([queue], 5 - len(deliveries), 5.0)):
        deliveries += got
    assert len(deliveries) == 5
    broker.ack_many(deliveries[:4])
    broker.nack(deliveries[4])
    [left] = broker.fetch([queue], 5, 5.0)
    assert left.body == deliveries[4].body
    broker.ack_many([left])
    broker.ack_many([])
    assert broker.depth(queue) == QueueDepth(queue, 0, 0, 0, 0)


def test_a_nacked_message_is_delivered_again_and_counted(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    broker.publish(queue, b"again")
    [delivery] = broker.fetch([queue], 1, 5.0)
    broker.nack(delivery)
    [again] = broker.fetch([queue], 1, 5.0)
    assert again.body == b"again"
    assert again.delivery_count == 2


def test_a_message_nacked_with_a_delay_waits_that_long(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    broker.publish(queue, b"later")
    [delivery] = broker.fetch([queue], 1, 5.0)
    nacked = time.monotonic()
    broker.nack(delivery, delay=0.6)
    assert broker.fetch([queue], 1, 0.2) == []
    assert broker.depth(queue).delayed == 1
    [again] = broker.fetch([queue], 1, 5.0)
    assert again.body == b"later"
    assert time.monotonic() - nacked >= 0.5


def test_a_dead_lettered_message_moves_beside_its_queue_with_the_reason(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    broker.publish(queue, b"poison", headers={"origin": "test"})
    [delivery] = broker.fetch([queue], 1, 5.0)
    broker.dead_letter(delivery, "cannot decode")
    depth = broker.depth(queue)
    assert (depth.ready, depth.in_flight, depth.dead) == (0, 0, 1)
    [dead] = broker.fetch([dead_letter_queue(queue)], 1, 5.0)
    assert dead.body == b"poison"
    assert dead.headers[REASON_HEADER] == "cannot decode"
    assert dead.headers["origin"] == "test"
    assert broker.fetch([queue], 1, 0.1) == []


def test_a_lost_consumers_message_is_delivered_again_after_the_visibility_timeout(
    make_broker: MakeBroker, broker_factory: BrokerFactory, queue: str
) -> None:
    lost, survivor = make_broker(visibility_timeout=0.5), make_broker(visibility_timeout=0.5)
    lost.publish(queue, b"orphan")
    assert len(lost.fetch([queue], 1, 5.0)) == 1
    broker_factory.abandon(lost)
    [again] = survivor.fetch([queue], 1, 10.0)
    assert again.body == b"orphan"
    assert again.delivery_count >= 2


def test_extend_keeps_a_long_task_from_being_delivered_twice(make_broker: MakeBroker, queue: str) -> None:
    worker, other = make_broker(visibility_timeout=0.6), make_broker(visibility_timeout=0.6)
    worker.publish(queue, b"long")
    [delivery] = worker.fetch([queue], 1, 5.0)
    until = time.monotonic() + 1.8
    while time.monotonic() < until:
        worker.extend([delivery])
        assert other.fetch([queue], 1, 0.2) == []
    worker.ack(delivery)
    assert other.fetch([queue], 1, 0.8) == []


def test_a_delayed_message_is_not_delivered_before_its_delay(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    published = time.monotonic()
    broker.publish(queue, b"eta", delay=0.6)
    assert broker.fetch([queue], 1, 0.2) == []
    assert broker.depth(queue).delayed == 1
    assert fetch_one(broker, queue, timeout=5.0) == b"eta"
    assert time.monotonic() - published >= 0.5


def test_higher_priority_first_then_oldest_first(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    for body, priority in [(b"low-1", 0), (b"high", 5), (b"mid", 1), (b"low-2", 0)]:
        broker.publish(queue, body, priority=priority)
    time.sleep(0.05)
    bodies = [d.body for d in broker.fetch([queue], 10, 5.0)]
    assert bodies == [b"high", b"mid", b"low-1", b"low-2"]


def test_fetch_takes_at_most_max_messages(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    broker.publish_many([OutgoingMessage(queue, str(i).encode()) for i in range(5)])
    assert len(broker.fetch([queue], 3, 5.0)) == 3
    assert broker.depth(queue).ready == 2


def test_fetch_reads_several_queues_in_priority_order(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    other = queue + "-other"
    broker.publish(queue, b"a", priority=1)
    broker.publish(other, b"b", priority=3)
    broker.publish(queue, b"c", priority=2)
    time.sleep(0.05)
    assert [d.body for d in broker.fetch([queue, other], 10, 5.0)] == [b"b", b"c", b"a"]


def test_fetch_ignores_queues_it_was_not_asked_for(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    broker.publish(queue + "-elsewhere", b"not mine")
    assert broker.fetch([queue], 1, 0.2) == []


def test_depth_counts_ready_delayed_in_flight_and_dead(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    broker.publish_many([OutgoingMessage(queue, b"x") for _ in range(4)])
    broker.publish(queue, b"delayed", delay=60)
    first, second = broker.fetch([queue], 2, 5.0)
    broker.dead_letter(first, "bad")
    assert broker.depth(queue) == QueueDepth(queue, ready=2, delayed=1, in_flight=1, dead=1)
    broker.ack(second)


def test_publish_many_stores_every_message_in_order(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    bodies = [f"m{i}".encode() for i in range(50)]
    broker.publish_many([OutgoingMessage(queue, b) for b in bodies])
    got: list[bytes] = []
    while len(got) < 50:
        batch = broker.fetch([queue], 50, 5.0)
        assert batch
        got.extend(d.body for d in batch)
        for d in batch:
            broker.ack(d)
    assert got == bodies


def test_concurrent_consumers_never_receive_the_same_message(make_broker: MakeBroker, queue: str) -> None:
    producer = make_broker()
    total = 300
    producer.publish_many([OutgoingMessage(queue, str(i).encode()) for i in range(total)])
    consumers = [make_broker() for _ in range(4)]
    received: list[list[bytes]] = [[] for _ in consumers]

    def consume(index: int) -> None:
        broker = consumers[index]
        while True:
            batch = broker.fetch([queue], 7, 0.5)
            if not batch:
                return
            for d in batch:
                received[index].append(d.body)
                broker.ack(d)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(consumers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [body for bodies in received for body in bodies]
    assert len(everything) == total
    assert set(everything) == {str(i).encode() for i in range(total)}


def test_wake_makes_a_blocked_fetch_return_early(make_broker: MakeBroker, queue: str) -> None:
    broker = make_broker()
    results: list[object] = []
    started = time.monotonic()
    t = threading.Thread(target=lambda: results.append(broker.fetch([queue], 1, 20.0)))
    t.start()
    time.sleep(0.2)
    broker.wake()
    t.join(10)
    assert not t.is_alive()
    assert results == [[]]
    assert time.monotonic() - started < 5.0


def test_a_publish_wakes_a_blocked_fetch(make_broker: MakeBroker, queue: str) -> None:
    consumer, producer = make_broker(), make_broker()
    results: list[float] = []

    def consume() -> None:
        deliveries = consumer.fetch([queue], 1, 20.0)
        results.append(time.monotonic())
        assert deliveries

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.2)
    published = time.monotonic()
    producer.publish(queue, b"ping")
    t.join(20)
    assert results and results[0] - published < 2.0
