"""The result store goes away mid-run (a Redis of the test's own, stopped by its PID for several
seconds, then started again with its data): the worker pauses and backs off, holds the results it
finished instead of running their tasks again, acknowledges nothing without its result, and
finishes everything once Redis is back. Runs on SQLite and on RabbitMQ as the broker."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from machinery import App, Config, GroupResult, Signature
from tests.support.amqp import amqp_config
from tests.support.effects import effects
from tests.support.names import unique_name
from tests.support.processes import worker_process
from tests.support.redis_server import OwnRedis

TASKS = 1000
OUTAGE = 8.0


def _sqlite(tmp: Path) -> Config:
    url = f"sqlite:///{tmp / 'machinery.sqlite3'}"
    return Config(broker_url=url, default_queue=unique_name("tasks"), visibility_timeout=5.0)


def _amqp(tmp: Path) -> Config:
    return amqp_config(tmp)


def _once_still(path: Path, *, quiet: float, until: float) -> int:
    """How many runs ``path`` records once none was added for ``quiet`` seconds (or at ``until``)."""
    count, since = len(effects(path)), time.monotonic()
    while time.monotonic() < until:
        time.sleep(0.05)
        now = len(effects(path))
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return count


@pytest.mark.slow
@pytest.mark.parametrize("make_config", [_sqlite, _amqp], ids=["sqlite", "amqp"])
def test_a_result_store_outage_pauses_the_worker_and_loses_nothing(tmp_path: Path, make_config: object) -> None:
    redis = OwnRedis(tmp_path / "redis")
    redis.start()
    try:
        config: Config = make_config(tmp_path).replace(result_backend=redis.url)  # type: ignore[operator]
        effects_file = tmp_path / "effects.sqlite3"
        with App(config) as app:
            app.broker.declare([config.default_queue])
            results = app.send_tasks([Signature("tally", [f"k{i}", i]) for i in range(TASKS)])
            with worker_process(config, tmp_path / "worker.log", "-c", "4",
                                MACHINERY_TEST_EFFECTS=str(effects_file)) as worker:
                deadline = time.monotonic() + 60
                while len(effects(effects_file)) < TASKS // 5 and time.monotonic() < deadline:
                    time.sleep(0.005)
                redis.stop()
                stopped = time.monotonic()
                # What was running when Redis went away finishes; the worker pauses once a write
                # fails (which takes longer on a loaded machine): wait until runs stop coming.
                during_start = _once_still(effects_file, quiet=1.0, until=stopped + OUTAGE - 2.0)
                time.sleep(max(1.0, stopped + OUTAGE - time.monotonic()))
                during_end = len(effects(effects_file))
                redis.start()
                values = GroupResult("", results).get(timeout=120)
        log = worker.output()
    finally:
        redis.stop()
    seen = Counter(effects(effects_file))
    reruns = sum(n - 1 for n in seen.values())
    print(f"\nstore outage ({config.broker_url.split(':')[0]}): {TASKS} tasks, Redis down {OUTAGE:g} s, "
          f"{len(seen)} ran, re-runs {reruns}, runs while paused {during_end - during_start}")
    assert values == [float(i) for i in range(TASKS)]
    assert set(seen) == {f"k{i}" for i in range(TASKS)}
    assert during_end == during_start, "tasks kept running while the result store was away"
    assert reruns == 0
    assert "the result store cannot be reached" in log
    assert "the result store is back" in log
