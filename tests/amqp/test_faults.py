"""Real faults through RabbitMQ: worker processes killed with SIGKILL mid-task, and connections cut
by a TCP proxy the test owns. Nothing may be lost; duplicates (at-least-once) are counted."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from machinery import App, Signature
from tests.amqp.proxy import TCPProxy
from tests.support.amqp import amqp_config
from tests.support.effects import effects
from tests.support.processes import WorkerProcess, worker_process
from tests.support.waiting import eventually


def _report(name: str, keys: list[str], expected: set[str]) -> tuple[int, int]:
    """Print and return (lost, duplicates) for the recorded ``keys``."""
    counts = Counter(keys)
    lost = len(expected - set(counts))
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    print(f"{name}: {len(expected)} tasks, {len(keys)} runs recorded, lost {lost}, duplicates {duplicates}")
    return lost, duplicates


@pytest.mark.slow
def test_workers_killed_mid_task_lose_nothing(tmp_path: Path) -> None:
    config = amqp_config(tmp_path)
    side = tmp_path / "effects.sqlite3"
    log = tmp_path / "worker.log"
    total, kills = 1000, 4
    expected = {f"k{i}" for i in range(total)}
    with App(config) as app:
        app.send_tasks([Signature("record", [key, 0.01]) for key in sorted(expected)])
        for _ in range(kills):
            worker = WorkerProcess(config, log, "-c", "8", MACHINERY_TEST_EFFECTS=str(side))
            target = len(effects(side)) + 20
            # Kill it once it is surely mid-task: some effects recorded since it started.
            assert eventually(lambda: len(effects(side)) > target, timeout=30), worker.output()  # noqa: B023
            worker.kill()
        with worker_process(config, log, "-c", "8", MACHINERY_TEST_EFFECTS=str(side)) as last:
            assert eventually(lambda: expected <= set(effects(side)), timeout=120), last.output()
    lost, _duplicates = _report("SIGKILL x4", effects(side), expected)
    assert lost == 0


@pytest.mark.slow
def test_a_cut_connection_loses_nothing_for_producer_and_worker(tmp_path: Path) -> None:
    proxy = TCPProxy()
    config = amqp_config(tmp_path, url=proxy.url())
    side = tmp_path / "effects.sqlite3"
    total, batch = 600, 50
    expected = {f"k{i}" for i in range(total)}
    sent: list[str] = []

    def produce(app: App) -> None:
        keys = sorted(expected)
        for start in range(0, total, batch):
            chunk = keys[start:start + batch]
            app.send_tasks([Signature("record", [key, 0.002]) for key in chunk])
            sent.extend(chunk)
            time.sleep(0.05)

    try:
        with App(config) as app, worker_process(config, tmp_path / "worker.log", "-c", "4",
                                                MACHINERY_TEST_EFFECTS=str(side)) as worker:
            producer = threading.Thread(target=produce, args=(app,))
            producer.start()
            assert eventually(lambda: len(effects(side)) > 50, timeout=30), worker.output()
            connections = proxy.connections
            proxy.cut(refuse_for=1.0)
            producer.join(60)
            assert not producer.is_alive()
            assert eventually(lambda: expected <= set(effects(side)), timeout=60), worker.output()
            assert proxy.connections > connections  # both sides really reconnected
            assert worker.process.poll() is None
    finally:
        proxy.close()
    assert sorted(sent) == sorted(expected)
    lost, _duplicates = _report("connection cut", effects(side), expected)
    assert lost == 0
