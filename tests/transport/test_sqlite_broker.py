"""What the SQLite broker adds to the broker contract: URLs, WAL and durability, wake-ups without
polling, leases given back at close, lost leases, and clear errors."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from machinery.brokers.base import Delivery, OutgoingMessage, QueueDepth
from machinery.brokers.sqlite import SQLiteBroker
from machinery.config import Config
from machinery.errors import BrokerError, ConfigError
from machinery.sqlite.pool import parse_sqlite_url


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "broker.sqlite3")


def test_a_url_with_three_slashes_names_a_relative_path() -> None:
    assert parse_sqlite_url("sqlite:///machinery.sqlite3").path == "machinery.sqlite3"


def test_a_url_with_four_slashes_names_an_absolute_path() -> None:
    assert parse_sqlite_url("sqlite:////var/lib/q.db").path == "/var/lib/q.db"


def test_the_default_durability_is_normal_and_a_url_may_ask_for_full() -> None:
    assert parse_sqlite_url("sqlite:///q.db").synchronous == "NORMAL"
    assert parse_sqlite_url("sqlite:///q.db?synchronous=full").synchronous == "FULL"


@pytest.mark.parametrize(
    "url",
    ["sqlite:///:memory:", "sqlite://", "sqlite://host/q.db", "redis:///q.db", "sqlite:///q.db?synchronous=sometimes",
     "sqlite:///q.db?cache=shared"],
)
def test_a_url_the_broker_cannot_use_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="broker_url"):
        parse_sqlite_url(url)


def test_from_config_uses_the_url_and_visibility_timeout(db: str) -> None:
    broker = SQLiteBroker.from_config(Config(broker_url=f"sqlite:///{db}", visibility_timeout=7.5))
    try:
        assert broker.options.path == db
        assert broker.visibility_timeout == 7.5
    finally:
        broker.close()


def test_the_database_is_in_wal_mode_with_the_chosen_synchronous_level(db: str) -> None:
    broker = SQLiteBroker.from_url(f"sqlite:///{db}?synchronous=full")
    try:
        level = broker._pool.run(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])
        assert level == 2  # FULL
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        broker.close()


def test_a_published_message_survives_closing_and_reopening(db: str) -> None:
    first = SQLiteBroker(db)
    first.publish("q", b"kept", delay=0.0)
    first.close()
    second = SQLiteBroker(db)
    try:
        [delivery] = second.fetch(["q"], 1, 5.0)
        assert delivery.body == b"kept"
    finally:
        second.close()


def test_a_publish_wakes_a_blocked_fetch_without_waiting_for_the_poll(db: str) -> None:
    consumer, producer = SQLiteBroker(db, poll_interval=60.0), SQLiteBroker(db)
    woke: list[float] = []

    def consume() -> None:
        consumer.fetch(["q"], 1, 30.0)
        woke.append(time.monotonic())

    thread = threading.Thread(target=consume)
    try:
        thread.start()
        time.sleep(0.3)
        published = time.monotonic()
        producer.publish("q", b"ping")
        thread.join(30)
        assert woke and woke[0] - published < 2.0
    finally:
        consumer.close()
        producer.close()


def test_a_delayed_message_is_fetched_when_due_without_waiting_for_the_poll(db: str) -> None:
    broker = SQLiteBroker(db, poll_interval=60.0)
    try:
        broker.publish("q", b"eta", delay=0.5)
        started = time.monotonic()
        assert len(broker.fetch(["q"], 1, 30.0)) == 1
        assert 0.4 <= time.monotonic() - started < 5.0
    finally:
        broker.close()


def test_closing_gives_unsettled_deliveries_back_at_once(db: str) -> None:
    leaving, staying = SQLiteBroker(db, visibility_timeout=600), SQLiteBroker(db)
    try:
        leaving.publish("q", b"unfinished")
        assert len(leaving.fetch(["q"], 1, 5.0)) == 1
        leaving.close()
        [again] = staying.fetch(["q"], 1, 5.0)
        assert again.body == b"unfinished"
    finally:
        staying.close()


@contextmanager
def contested(db: str) -> Iterator[tuple[SQLiteBroker, SQLiteBroker, Delivery, Delivery]]:
    """Two clients, ``slow`` (0.3 s leases) and ``fast``: ``slow`` fetched a message and lost its
    lease (``stale``), ``fast`` holds it now (``current``)."""
    slow, fast = SQLiteBroker(db, visibility_timeout=0.3), SQLiteBroker(db, visibility_timeout=30)
    try:
        slow.publish("q", b"contested")
        [stale] = slow.fetch(["q"], 1, 5.0)
        time.sleep(0.5)
        [current] = fast.fetch(["q"], 1, 5.0)
        yield slow, fast, stale, current
    finally:
        slow.close()
        fast.close()


def test_settling_a_delivery_whose_lease_was_lost_leaves_the_new_holders_message_alone(db: str) -> None:
    with contested(db) as (slow, fast, stale, current):
        slow.ack(stale)
        slow.nack(stale)
        slow.dead_letter(stale, "late")
        slow.extend([stale])
        assert fast.depth("q").in_flight == 1
        assert fast.depth("q").dead == 0
        fast.ack(current)
        assert fast.depth("q").in_flight == 0


def test_ack_many_skips_deliveries_whose_lease_was_lost_and_settles_the_rest(db: str) -> None:
    with contested(db) as (slow, fast, stale, current):
        slow.publish("q", b"mine")
        [mine] = slow.fetch(["q"], 1, 5.0)
        slow.ack_many([stale, mine])
        assert fast.depth("q").in_flight == 1
        fast.ack(current)
        assert fast.depth("q") == QueueDepth("q", 0, 0, 0, 0)


def test_a_database_that_stays_locked_raises_broker_error(db: str) -> None:
    broker = SQLiteBroker.from_url(f"sqlite:///{db}?busy_timeout=0.05")
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(BrokerError, match="locked"):
            broker.publish("q", b"blocked")
    finally:
        blocker.rollback()
        blocker.close()
        broker.close()


def test_a_database_in_a_missing_directory_raises_broker_error(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="missing"):
        SQLiteBroker(str(tmp_path / "missing" / "q.db"))


def test_a_body_that_is_not_bytes_is_refused(db: str) -> None:
    broker = SQLiteBroker(db)
    try:
        with pytest.raises(BrokerError, match="bytes"):
            broker.publish("q", "text")  # type: ignore[arg-type]
    finally:
        broker.close()


def test_a_closed_broker_refuses_work(db: str) -> None:
    broker = SQLiteBroker(db)
    broker.close()
    with pytest.raises(BrokerError, match="closed"):
        broker.publish("q", b"late")


def test_wake_before_fetch_makes_the_next_empty_fetch_return_at_once(db: str) -> None:
    broker = SQLiteBroker(db)
    try:
        broker.wake()
        started = time.monotonic()
        assert broker.fetch(["q"], 1, 20.0) == []
        assert time.monotonic() - started < 2.0
    finally:
        broker.close()


def rows_in(db: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM machinery_messages").fetchone()[0])


def test_acknowledged_messages_are_deleted_by_close(db: str) -> None:
    broker = SQLiteBroker(db)
    broker.publish_many([OutgoingMessage("q", b"x") for _ in range(5)])
    for delivery in broker.fetch(["q"], 5, 5.0):
        broker.ack(delivery)
    broker.close()
    assert rows_in(db) == 0


def test_acknowledged_messages_are_deleted_in_batches_while_consuming(db: str) -> None:
    broker = SQLiteBroker(db)
    try:
        broker.publish_many([OutgoingMessage("q", b"x") for _ in range(200)])
        while deliveries := broker.fetch(["q"], 10, 0.1):
            for delivery in deliveries:
                broker.ack(delivery)
        assert rows_in(db) < 40
    finally:
        broker.close()


def test_acknowledgements_left_by_a_dead_consumer_are_swept_by_the_next_one(db: str) -> None:
    dead = SQLiteBroker(db)
    dead.publish("q", b"x")
    [delivery] = dead.fetch(["q"], 1, 5.0)
    dead.ack(delivery)  # marked, never deleted: this broker is abandoned without close
    successor = SQLiteBroker(db)
    try:
        assert successor.fetch(["q"], 1, 0.1) == []
        assert rows_in(db) == 0
    finally:
        successor.close()


def test_a_message_delayed_by_another_broker_is_delivered_once_due(db: str) -> None:
    producer, consumer = SQLiteBroker(db), SQLiteBroker(db)
    try:
        consumer.publish("q", b"now")
        assert len(consumer.fetch(["q"], 1, 5.0)) == 1  # the consumer has looked at the queue already
        published = time.monotonic()
        producer.publish("q", b"later", delay=0.5)
        [delivery] = consumer.fetch(["q"], 1, 10.0)
        assert delivery.body == b"later"
        assert 0.4 <= time.monotonic() - published < 5.0
    finally:
        producer.close()
        consumer.close()


def test_a_due_delayed_message_counts_as_ready_before_any_consumer_looks(db: str) -> None:
    broker = SQLiteBroker(db)
    try:
        broker.publish("q", b"eta", delay=0.2)
        assert broker.depth("q").delayed == 1
        time.sleep(0.3)
        depth = broker.depth("q")
        assert (depth.ready, depth.delayed) == (1, 0)
    finally:
        broker.close()


def test_delayed_messages_do_not_hold_back_ready_ones(db: str) -> None:
    broker = SQLiteBroker(db)
    try:
        broker.publish_many([OutgoingMessage("q", b"eta", delay=3600) for _ in range(50)])
        broker.publish("q", b"ready")
        [delivery] = broker.fetch(["q"], 10, 5.0)
        assert delivery.body == b"ready"
    finally:
        broker.close()
