"""Worker processes killed with SIGKILL at random points while they store results in batches and
publish follow-ups (chains), on SQLite and on RabbitMQ + Redis: every result is stored exactly as
computed, every chain completes, nothing is lost; re-runs (at-least-once) are counted and printed."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from machinery import App, Config, GroupResult, Signature, chain
from tests.support.amqp import amqp_config
from tests.support.effects import effects
from tests.support.names import unique_name
from tests.support.processes import REPO_ROOT, process_env, worker_command
from tests.support.services import require_redis

PLAIN = 1000
CHAINS = 150
STEPS = 3
KILLS = 5
#: Seconds a worker process is given to import and install its signal handlers before SIGTERM.
STARTUP_SECONDS = 3.0
WORKERS = 2


def _sqlite(tmp: Path) -> Config:
    url = f"sqlite:///{tmp / 'machinery.sqlite3'}"
    return Config(broker_url=url, result_backend=url, default_queue=unique_name("tasks"), visibility_timeout=1.0)


def _amqp_redis(tmp: Path) -> Config:
    return amqp_config(tmp).replace(result_backend=require_redis())


@pytest.mark.slow
@pytest.mark.parametrize("make_config", [_sqlite, _amqp_redis], ids=["sqlite", "amqp+redis"])
def test_sigkilled_workers_store_every_result_and_complete_every_chain(tmp_path: Path, make_config: object) -> None:
    config: Config = make_config(tmp_path)  # type: ignore[operator]
    effects_file = tmp_path / "effects.sqlite3"
    env = process_env(config, MACHINERY_TEST_EFFECTS=str(effects_file))

    started_at: dict[int, float] = {}

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(worker_command("-c", "4"), cwd=REPO_ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started_at[process.pid] = time.monotonic()
        return process

    with App(config) as app:
        app.broker.declare([config.default_queue])
        plain = app.send_tasks([Signature("tally", [f"p{i}", i, i]) for i in range(PLAIN)])
        chains = app.send_tasks([
            chain(*(Signature("tally", [f"c{i}-{s}", i if s == 1 else 1]) for s in range(1, STEPS + 1)))
            for i in range(CHAINS)
        ])
        workers = [start() for _ in range(WORKERS)]
        rng = random.Random(4321)
        kills = 0
        expected_runs = PLAIN + CHAINS * STEPS
        try:
            while kills < KILLS and len(set(effects(effects_file))) < expected_runs:
                # Kill once the workers made progress (so the kill lands mid-batch, not at start-up).
                target = len(effects(effects_file)) + rng.randint(20, 80)
                deadline = time.monotonic() + 30
                while len(effects(effects_file)) < target and time.monotonic() < deadline:
                    time.sleep(0.005)
                victim = rng.randrange(WORKERS)
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait()
                kills += 1
                workers[victim] = start()
            values = GroupResult("", plain).get(timeout=120)
            finals = [c.get(timeout=120) for c in chains]
        finally:
            # A worker started just now may still be importing, before its SIGTERM handler exists
            # (it would die of the signal, exit -15): give each one time to come up first.
            for w in workers:
                time.sleep(max(0.0, started_at[w.pid] + STARTUP_SECONDS - time.monotonic()))
                w.send_signal(signal.SIGTERM)
            codes = [w.wait(timeout=60) for w in workers]
        depth = app.broker.depth(config.default_queue)

    seen = Counter(effects(effects_file))
    reruns = sum(n - 1 for n in seen.values())
    print(f"\nsettling crash test ({config.broker_url.split(':')[0]}): {PLAIN} tasks + {CHAINS} chains of {STEPS}, "
          f"{kills} SIGKILLs, re-runs {reruns}")
    assert kills >= 1
    assert values == [2.0 * i for i in range(PLAIN)]
    assert finals == [float(i + STEPS - 1) for i in range(CHAINS)]
    keys = {f"p{i}" for i in range(PLAIN)} | {f"c{i}-{s}" for i in range(CHAINS) for s in range(1, STEPS + 1)}
    assert set(seen) == keys
    assert (depth.ready, depth.delayed, depth.dead) == (0, 0, 0)
    assert codes == [0] * WORKERS
