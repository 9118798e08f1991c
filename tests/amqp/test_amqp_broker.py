"""What the AMQP broker adds to the broker contract: topology, confirms, delays, delivery counts,
reconnection and heartbeats, against the real RabbitMQ."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterator, Sequence

import pika
import pytest

from machinery.brokers.amqp import AMQPBroker
from machinery.brokers.amqp_confirms import Resolved, Waiter
from machinery.brokers.amqp_topology import DELAY_BUCKETS, bucket_for
from machinery.brokers.base import Delivery, OutgoingMessage
from machinery.errors import BrokerError
from tests.amqp.proxy import TCPProxy
from tests.support.amqp import forget_at_exit, new_broker
from tests.support.names import unique_name
from tests.support.waiting import eventually


@pytest.fixture
def token() -> str:
    return unique_name("amqp")


@pytest.fixture
def broker(rabbitmq_url: str, token: str) -> Iterator[AMQPBroker]:
    b = new_broker(rabbitmq_url, token)
    yield b
    b.close()


@pytest.fixture
def proxy() -> Iterator[TCPProxy]:
    p = TCPProxy()
    yield p
    p.close()


def test_a_delay_waits_in_the_largest_bucket_that_does_not_pass_it() -> None:
    assert bucket_for(0.2) == 0
    assert bucket_for(1000) == 9
    assert bucket_for(1024) == 10
    assert bucket_for(10 * 365 * 86_400_000) == DELAY_BUCKETS - 1


def test_an_amqps_url_uses_tls_with_the_default_context_and_checks_the_host() -> None:
    broker = AMQPBroker("amqps://user:pw@rabbit.example:5671/")
    ssl_options = broker.connection.servers.current.ssl_options
    assert ssl_options is not None
    assert ssl_options.context.verify_mode == ssl.CERT_REQUIRED
    assert ssl_options.context.check_hostname
    assert ssl_options.server_hostname == "rabbit.example"


def test_the_repr_never_shows_the_password() -> None:
    broker = AMQPBroker("amqp://guest:hunter2hunter2@127.0.0.1:1/")
    assert "hunter2" not in repr(broker)


def test_an_unreachable_server_is_a_broker_error_after_bounded_retries_without_the_password() -> None:
    broker = AMQPBroker("amqp://guest:hunter2hunter2@127.0.0.1:1/", connect_attempts=2)
    started = time.monotonic()
    with pytest.raises(BrokerError) as info:
        broker.publish("q", b"x")
    broker.close()
    assert time.monotonic() - started < 10
    assert "hunter2" not in str(info.value)
    assert "127.0.0.1:1" in str(info.value)


def test_an_unroutable_message_is_a_broker_error(rabbitmq_url: str, broker: AMQPBroker, token: str) -> None:
    queue = f"q-{token}"
    broker.declare([queue])
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    connection.channel().queue_delete(queue)
    connection.close()
    with pytest.raises(BrokerError, match="unroutable"):
        broker.publish(queue, b"nowhere")


def test_declaring_a_queue_with_other_arguments_than_it_has_is_a_broker_error(
    rabbitmq_url: str, broker: AMQPBroker, token: str
) -> None:
    broker.declare([f"q-{token}"])
    other = new_broker(rabbitmq_url, token, queue_declare_args={"x-max-priority": 7})
    try:
        with pytest.raises(BrokerError, match="PRECONDITION_FAILED"):
            other.declare([f"q-{token}"])
    finally:
        other.close()


def test_a_delayed_message_keeps_its_priority_and_headers(broker: AMQPBroker, token: str) -> None:
    queue = f"q-{token}"
    broker.publish(queue, b"later", delay=0.3, priority=4, headers={"k": "v"})
    [delivery] = broker.fetch([queue], 1, 10.0)
    assert (delivery.priority, dict(delivery.headers)) == (4, {"k": "v"})


def test_a_long_delay_is_held_by_rabbitmq_not_delivered_early(broker: AMQPBroker, token: str) -> None:
    queue = f"q-{token}"
    broker.publish(queue, b"in an hour", delay=3600)
    assert broker.fetch([queue], 1, 0.5) == []
    assert broker.depth(queue).delayed == 1


def test_publish_many_confirms_every_message(broker: AMQPBroker, token: str) -> None:
    queue = f"q-{token}"
    broker.publish_many([OutgoingMessage(queue, str(i).encode(), priority=i % 3) for i in range(2000)])
    assert broker.depth(queue).ready == 2000


def test_a_quorum_queue_counts_deliveries_exactly(rabbitmq_url: str, token: str) -> None:
    def make() -> AMQPBroker:
        return new_broker(rabbitmq_url, token, queue_declare_args={"x-queue-type": "quorum"})

    queue = f"q-{token}"
    first = make()
    first.publish(queue, b"again and again")
    for expected in (1, 2):
        [delivery] = first.fetch([queue], 1, 10.0)
        assert delivery.delivery_count == expected
        first.close()  # gone without settling: RabbitMQ delivers it again
        first = make()
    [delivery] = first.fetch([queue], 1, 10.0)
    assert delivery.delivery_count == 3
    first.ack(delivery)
    first.close()


@pytest.mark.slow
def test_heartbeats_flow_while_a_delivery_is_held_for_long(rabbitmq_url: str, token: str) -> None:
    url = rabbitmq_url.rstrip("/") + "/%2F?heartbeat=1"
    exchange, queue = f"ex-{token}", f"q-{token}"
    forget_at_exit(rabbitmq_url, exchange, (queue,))
    broker = AMQPBroker(url, exchange=exchange, default_queue=queue, binding_key=queue)
    other = new_broker(rabbitmq_url, token)
    try:
        broker.publish(queue, b"long task")
        [delivery] = broker.fetch([queue], 1, 10.0)
        time.sleep(4.0)  # four heartbeat intervals: a starved connection would be closed by now
        broker.ack(delivery)
        assert other.fetch([queue], 1, 1.0) == []
        broker.publish(queue, b"still connected")
        [after] = broker.fetch([queue], 1, 10.0)
        assert after.tag >> 48 == delivery.tag >> 48  # same connection generation: never reconnected
    finally:
        broker.close()
        other.close()


def test_a_publish_during_a_connection_cut_goes_through_after_reconnecting(
    rabbitmq_url: str, proxy: TCPProxy, token: str
) -> None:
    exchange, queue = f"ex-{token}", f"q-{token}"
    forget_at_exit(rabbitmq_url, exchange, (queue,))
    producer = AMQPBroker(proxy.url(), exchange=exchange, default_queue=queue, binding_key=queue)
    try:
        producer.publish(queue, b"before")
        cutter = threading.Thread(target=proxy.cut, args=(1.0,))
        cutter.start()
        time.sleep(0.1)
        producer.publish(queue, b"during")
        cutter.join()
        bodies: list[bytes] = []
        while len(bodies) < 2:
            batch = producer.fetch([queue], 10, 10.0)
            assert batch
            bodies += [d.body for d in batch]
            for d in batch:
                producer.ack(d)
        assert sorted(bodies) == [b"before", b"during"]
    finally:
        producer.close()


def redelivered_after_cut(consumer: AMQPBroker, proxy: TCPProxy, queue: str) -> tuple[Delivery, Delivery]:
    """Publish one message, fetch it, cut the connection: the delivery from before the cut and
    the same message redelivered on the new connection."""
    consumer.publish(queue, b"in flight")
    [old] = consumer.fetch([queue], 1, 10.0)
    proxy.cut(0.2)
    [again] = consumer.fetch([queue], 1, 15.0)
    return old, again


@pytest.fixture
def proxied(rabbitmq_url: str, proxy: TCPProxy, token: str) -> Iterator[AMQPBroker]:
    """A broker connected through ``proxy`` (which can cut the connection)."""
    queue = f"q-{token}"
    consumer = AMQPBroker(proxy.url(), exchange=f"ex-{token}", default_queue=queue, binding_key=queue)
    forget_at_exit(rabbitmq_url, consumer.exchange, (queue,))
    yield consumer
    consumer.close()


def test_settling_a_delivery_from_a_lost_connection_is_dropped_with_a_warning(
    proxied: AMQPBroker, proxy: TCPProxy, caplog: pytest.LogCaptureFixture
) -> None:
    consumer, queue = proxied, proxied.default_queue
    old, again = redelivered_after_cut(consumer, proxy, queue)
    assert again.body == b"in flight"
    assert again.delivery_count == 2
    with caplog.at_level(logging.WARNING, logger="machinery.brokers.amqp"):
        consumer.ack(old)
    assert "lost connection" in caplog.text
    consumer.ack(again)
    assert consumer.fetch([queue], 1, 0.5) == []


def test_depth_from_a_fresh_client_declares_what_it_needs_and_cannot_see_in_flight(
    broker: AMQPBroker, token: str
) -> None:
    depth = broker.depth(f"q-{token}")
    assert (depth.ready, depth.delayed, depth.dead, depth.in_flight) == (0, 0, 0, -1)


def test_ack_many_settles_every_delivery_of_the_batch(rabbitmq_url: str, broker: AMQPBroker, token: str) -> None:
    queue = f"q-{token}"
    broker.publish_many([OutgoingMessage(queue, str(i).encode()) for i in range(12)])
    deliveries: list[Delivery] = []
    while len(deliveries) < 12:
        batch = broker.fetch([queue], 12, 5.0)
        assert batch, "the published messages were not delivered"
        deliveries.extend(batch)
    broker.ack_many(deliveries[5:] + deliveries[:5])  # out of order: acks above the floor too
    assert broker.depth(queue).in_flight == 0
    broker.close()
    fresh = new_broker(rabbitmq_url, token)
    try:
        assert fresh.fetch([queue], 12, 0.5) == []
        assert fresh.depth(queue).ready == 0
    finally:
        fresh.close()


def test_ack_many_drops_deliveries_of_a_lost_connection_and_settles_the_rest(
    rabbitmq_url: str, proxied: AMQPBroker, proxy: TCPProxy, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    consumer, queue = proxied, proxied.default_queue
    old, again = redelivered_after_cut(consumer, proxy, queue)
    with caplog.at_level(logging.WARNING, logger="machinery.brokers.amqp"):
        consumer.ack_many([old, again])
    assert "lost connection" in caplog.text
    assert consumer.depth(queue).in_flight == 0
    fresh = AMQPBroker(rabbitmq_url, exchange=f"ex-{token}", default_queue=queue, binding_key=queue)
    try:
        assert fresh.fetch([queue], 1, 0.5) == []
    finally:
        fresh.close()


def test_acks_reach_rabbitmq_whether_or_not_the_io_thread_is_collecting_them(
    rabbitmq_url: str, token: str
) -> None:
    broker = new_broker(rabbitmq_url, token, prefetch_count=4)  # a window of 4: unsent acks stall it
    queue = f"q-{token}"
    try:
        broker.publish_many([OutgoingMessage(queue, str(i).encode()) for i in range(8)])
        first: list[Delivery] = []
        while len(first) < 4:
            batch = broker.fetch([queue], 4 - len(first), 5.0)
            assert batch, "the first window was not delivered"
            first.extend(batch)
        for i, delivery in enumerate(first):  # some while acks are being collected, some after
            broker.ack(delivery)
            time.sleep(0.0 if i % 2 == 0 else 0.05)
        second: list[Delivery] = []
        while len(second) < 4:
            batch = broker.fetch([queue], 4 - len(second), 5.0)
            assert batch, f"only {len(second)} of the next 4 delivered: an ack was not sent"
            second.extend(batch)
        assert sorted(d.body for d in first + second) == [str(i).encode() for i in range(8)]
    finally:
        broker.close()


def _publishing_threads(broker: AMQPBroker) -> list[str]:
    """Record the name of the thread that hands each publish to pika."""
    names: list[str] = []
    original = broker.connection.publish_now

    def recording(outs: Sequence[Resolved], waiter: Waiter) -> None:
        names.append(threading.current_thread().name)
        original(outs, waiter)

    broker.connection.__dict__["publish_now"] = recording
    return names


def test_a_publish_while_the_io_thread_sleeps_leaves_from_the_publishing_thread(
    broker: AMQPBroker, token: str
) -> None:
    queue = f"q-{token}"
    broker.publish(queue, b"connect")
    names = _publishing_threads(broker)
    time.sleep(0.05)  # the I/O thread is idle, waiting in poll
    broker.publish(queue, b"direct")
    assert names == [threading.current_thread().name]
    assert broker.depth(queue).ready == 2


def test_a_publish_while_the_io_thread_is_busy_is_handed_to_it(broker: AMQPBroker, token: str) -> None:
    queue = f"q-{token}"
    broker.publish(queue, b"connect")
    names = _publishing_threads(broker)
    finished = threading.Event()

    def publish() -> None:
        broker.publish(queue, b"queued")
        finished.set()

    with broker.connection.loop_lock:  # the I/O thread cannot run pika now, nor can a publisher
        publisher = threading.Thread(target=publish)
        publisher.start()
        assert not finished.wait(0.2)
    publisher.join(10.0)
    assert finished.is_set()
    assert names == ["machinery-amqp-io"]
    assert broker.depth(queue).ready == 2


def test_deliveries_and_confirms_split_anywhere_in_the_stream_arrive_whole(rabbitmq_url: str, token: str) -> None:
    """What RabbitMQ sends reaches the client in random pieces (a proxy splits it), so the frame
    scanner meets deliveries and confirms cut at every kind of boundary and hands the pieces it
    cannot read whole to pika: every publish is confirmed, and every message arrives once with its
    body (up to several frames), headers and priority intact."""
    proxy = TCPProxy(chunks=7)
    broker = new_broker(proxy.url(), token, prefetch_count=50)
    queue = broker.default_queue
    try:
        sizes = [0, 1, 100, 4_000, 131_072, 300_000]
        messages = [
            OutgoingMessage(queue, f"{i:05d}".encode() + b"x" * sizes[i % len(sizes)], 0.0, i % 4,
                            {"n": str(i), "tag": "é" * (i % 3)} if i % 5 == 0 else {})
            for i in range(240)
        ]
        for at in range(0, len(messages), 40):
            broker.publish_many(messages[at:at + 40])
        got: dict[bytes, Delivery] = {}
        deadline = time.monotonic() + 60
        while len(got) < len(messages) and time.monotonic() < deadline:
            batch = broker.fetch([queue], 25, 1.0)
            for delivery in batch:
                assert delivery.body[:5] not in got, "delivered twice"
                got[delivery.body[:5]] = delivery
            broker.ack_many(batch)
        assert len(got) == len(messages)
        for i, message in enumerate(messages):
            delivery = got[f"{i:05d}".encode()]
            assert delivery.body == message.body
            assert delivery.priority == message.priority
            assert dict(delivery.headers) == dict(message.headers)
            assert delivery.delivery_count == 1
    finally:
        broker.close()
        proxy.close()


def test_when_settled_answers_once_confirmed_and_an_ack_made_on_the_io_thread_reaches_rabbitmq(
    rabbitmq_url: str, broker: AMQPBroker, token: str
) -> None:
    queue, other = f"q-{token}", f"q2-{token}"
    broker.declare([queue, other])
    broker.publish(queue, b"first")
    [delivery] = broker.fetch([queue], 1, 5.0)
    answers: list[tuple[bool, str]] = []
    done = threading.Event()

    def settled(accepted: bool) -> None:  # the I/O thread's, unless the confirm came before this was given
        answers.append((accepted, threading.current_thread().name))
        done.set()

    broker.publish_begin([OutgoingMessage(other, b"follow-up")]).when_settled(settled)
    assert done.wait(5.0)
    assert answers in ([(True, "machinery-amqp-io")], [(True, threading.current_thread().name)])
    broker.connection.submit(lambda: broker.ack_many([delivery]))  # acked on the I/O thread: sent at once
    assert eventually(lambda: broker.depth(queue).in_flight == 0)
    broker.close()
    fresh = new_broker(rabbitmq_url, token)
    try:
        assert fresh.fetch([queue], 1, 0.5) == []  # the ack reached RabbitMQ
        assert [d.body for d in fresh.fetch([other], 1, 5.0)] == [b"follow-up"]
    finally:
        fresh.close()


def test_when_settled_answers_false_for_an_unroutable_message_and_wait_says_why(
    rabbitmq_url: str, broker: AMQPBroker, token: str
) -> None:
    queue = f"q-{token}"
    broker.declare([queue])
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    connection.channel().queue_delete(queue)
    connection.close()
    answers: list[bool] = []
    pending = broker.publish_begin([OutgoingMessage(queue, b"nowhere")])
    pending.when_settled(answers.append)
    assert eventually(lambda: answers == [False])
    with pytest.raises(BrokerError, match="unroutable"):
        pending.wait()
