"""The SQLite broker shared by several processes: every message consumed exactly once, and
messages held by a consumer killed with SIGKILL come back after the visibility timeout."""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import os
import signal
import time
from collections import Counter
from pathlib import Path

from machinery.brokers.base import OutgoingMessage
from machinery.brokers.sqlite import SQLiteBroker
from tests.transport import processes

ctx = multiprocessing.get_context("spawn")


def test_several_producers_and_consumers_handle_every_message_exactly_once(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.sqlite3")
    SQLiteBroker(db).close()  # create the schema once, before the crowd arrives
    n_producers, n_consumers, per_producer = 3, 3, 200
    producers_done = ctx.Event()
    received: multiprocessing.queues.Queue[list[str]] = ctx.Queue()
    consumers = [
        ctx.Process(target=processes.consume, args=(db, "q", producers_done, received)) for _ in range(n_consumers)
    ]
    producers = [ctx.Process(target=processes.produce, args=(db, "q", p, per_producer)) for p in range(n_producers)]
    for process in consumers + producers:
        process.start()
    for process in producers:
        process.join(60)
        assert process.exitcode == 0
    producers_done.set()
    bodies = [body for _ in consumers for body in received.get(timeout=60)]
    for process in consumers:
        process.join(30)
        assert process.exitcode == 0
    counts = Counter(bodies)
    expected = {f"{p}-{i}" for p in range(n_producers) for i in range(per_producer)}
    assert set(counts) == expected
    assert [body for body, n in counts.items() if n != 1] == []


def test_messages_held_by_a_killed_consumer_come_back_after_the_visibility_timeout(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.sqlite3")
    broker = SQLiteBroker(db, visibility_timeout=1.0)
    try:
        broker.publish_many([OutgoingMessage("q", str(i).encode()) for i in range(10)])
        holding = ctx.Event()
        victim = ctx.Process(target=processes.hold_leases, args=(db, "q", 10, 1.0, holding))
        victim.start()
        assert holding.wait(60)
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(10)
        killed = time.monotonic()
        again: list[bytes] = []
        while len(again) < 10:
            batch = broker.fetch(["q"], 10, 10.0)
            assert batch, "messages of the killed consumer were lost"
            assert all(d.delivery_count == 2 for d in batch)
            again.extend(d.body for d in batch)
            for d in batch:
                broker.ack(d)
        assert sorted(again) == sorted(str(i).encode() for i in range(10))
        assert time.monotonic() - killed < 10.0
        assert broker.depth("q").ready == 0
    finally:
        broker.close()
