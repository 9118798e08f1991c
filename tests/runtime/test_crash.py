"""Worker processes killed with SIGKILL mid-task, several times, over a run of 200+ tasks: every
task's effect is recorded (0 lost); duplicates (at-least-once) are counted and reported."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from machinery import App, Config, Signature
from tests.runtime.brokers import sqlite_config
from tests.support.effects import effects
from tests.support.processes import REPO_ROOT, process_env, worker_command

TASKS = 240
KILLS = 5
WORKERS = 2


def runs(path: Path) -> Counter[str]:
    """How many times each key was recorded."""
    return Counter(effects(path))


@pytest.mark.slow
def test_sigkilled_workers_lose_no_task(tmp_path: Path) -> None:
    config: Config = sqlite_config(tmp_path).replace(visibility_timeout=1.0)
    effects_file = tmp_path / "effects.sqlite3"
    env = process_env(config, MACHINERY_TEST_EFFECTS=str(effects_file))

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(worker_command("-c", "4"), cwd=REPO_ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    keys = [f"k{i:04d}" for i in range(TASKS)]
    with App(config) as app:
        app.send_tasks([Signature("record", [key, 0.1]) for key in keys])
        workers = [start() for _ in range(WORKERS)]
        rng = random.Random(1234)
        kills = 0
        try:
            while kills < KILLS:
                time.sleep(rng.uniform(0.3, 0.6))
                if len(runs(effects_file)) >= TASKS:
                    break
                victim = rng.randrange(WORKERS)
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait()
                kills += 1
                workers[victim] = start()
            deadline = time.monotonic() + 60
            while len(runs(effects_file)) < TASKS and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            codes = [w.wait(timeout=30) for w in workers]
        depth = app.broker.depth(config.default_queue)

    seen = runs(effects_file)
    lost = [key for key in keys if key not in seen]
    duplicates = sum(n - 1 for n in seen.values())
    print(f"\ncrash test: {TASKS} tasks, {kills} SIGKILLs, lost {len(lost)}, duplicate runs {duplicates}")
    assert kills >= 3, "the run ended before the workers were killed enough times"
    assert lost == []
    assert set(seen) == set(keys)
    assert (depth.ready, depth.delayed, depth.in_flight, depth.dead) == (0, 0, 0, 0)
    assert codes == [0] * WORKERS
