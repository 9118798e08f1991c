"""Two workers with different tasks on one queue (Go Machinery's
``TestWorkerOnlyConsumesRegisteredTask``): every task runs on the worker that has it, none is
failed or dead-lettered, 50 rounds in a row, on SQLite (where a worker claims only its own tasks)
and on RabbitMQ (where a task the receiving worker lacks comes back after a short jittered back-off)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from machinery import App, Config, Signature
from machinery.brokers.sqlite import SQLiteBroker
from machinery.routing import Router
from tests.support.amqp import amqp_config
from tests.support.waiting import TIMEOUT
from tests.support.workers import running


def _sqlite(tmp: Path) -> Config:
    return Config(broker_url=f"sqlite:///{tmp / 'broker.sqlite3'}", result_backend=f"sqlite:///{tmp / 'r.sqlite3'}")


@pytest.mark.parametrize("make_config", [_sqlite, amqp_config], ids=["sqlite", "amqp"])
def test_two_workers_with_different_tasks_on_one_queue_run_every_task_50_times(
    tmp_path: Path, make_config: Callable[[Path], Config]
) -> None:
    config = make_config(tmp_path)
    with ExitStack() as stack:
        first, second, sender = (stack.enter_context(App(config)) for _ in range(3))
        first.register_task("only_first", lambda x: f"first:{x}")
        second.register_task("only_second", lambda x: f"second:{x}")
        stack.enter_context(running(first, concurrency=2))
        stack.enter_context(running(second, concurrency=2))
        for i in range(50):
            a = sender.send_task(Signature("only_first", [i]))
            b = sender.send_task(Signature("only_second", [i]))
            assert (a.get(timeout=TIMEOUT), b.get(timeout=TIMEOUT)) == (f"first:{i}", f"second:{i}")
        depth = sender.broker.depth(config.default_queue)
        assert depth.dead == 0


def test_a_sqlite_worker_claims_only_the_tasks_it_has_until_they_are_old(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    producer, consumer = SQLiteBroker.from_url(url), SQLiteBroker.from_url(url)
    try:
        router = Router(Config(broker_url=url))
        for name in ("mine", "theirs", "mine"):
            m = router.message(Signature(name))
            producer.publish_many([m])
        consumer.claim_only(["mine"], unclaimed_after=3600.0)
        taken = consumer.fetch([router.default_queue], 10, 0.2)
        assert [d.body.count(b'"Name":"mine"') for d in taken] == [1, 1]
        assert consumer.fetch([router.default_queue], 10, 0.1) == []
        consumer.claim_only(["mine"], unclaimed_after=0.0)  # "theirs" is now old enough to be given up on
        [old] = consumer.fetch([router.default_queue], 10, 0.2)
        assert b'"Name":"theirs"' in old.body and old.published_at > 0
    finally:
        producer.close()
        consumer.close()


def test_a_sqlite_file_made_before_task_names_gets_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE machinery_messages (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, held INTEGER NOT NULL "
        "DEFAULT 0, priority INTEGER NOT NULL DEFAULT 0, visible_at REAL NOT NULL, lease_owner TEXT, "
        "delivery_count INTEGER NOT NULL DEFAULT 0, published_at REAL NOT NULL, headers TEXT, body BLOB NOT NULL)"
    )
    conn.execute("INSERT INTO machinery_messages (queue, visible_at, published_at, body) VALUES ('q', 0, 0, x'7b7d')")
    conn.commit()
    conn.close()
    broker = SQLiteBroker.from_url(f"sqlite:///{path}")
    try:
        broker.claim_only(["x"], unclaimed_after=3600.0)
        [delivery] = broker.fetch(["q"], 10, 0.2)  # a row of unknown task: any consumer may take it
        assert delivery.body == b"{}"
    finally:
        broker.close()
