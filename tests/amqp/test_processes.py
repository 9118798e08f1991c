"""``machinery worker --processes P``: P worker processes under a supervisor, on RabbitMQ."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from machinery import App, Signature
from tests.support.amqp import amqp_config
from tests.support.processes import WorkerProcess


def _pids(app: App, count: int, seconds: float = 0.05) -> set[int]:
    results = app.send_tasks([Signature("pid", [seconds]) for _ in range(count)])
    return {int(str(r.get(timeout=30))) for r in results}


@pytest.mark.slow
def test_several_processes_share_the_work_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    config = amqp_config(tmp_path)
    supervisor = WorkerProcess(config, tmp_path / "worker.log", "--processes", "2", "-c", "2")
    try:
        with App(config) as app:
            # One process may take a whole batch (it prefetches) while the other still starts.
            pids: set[int] = set()
            deadline = time.monotonic() + 30
            while len(pids) < 2 and time.monotonic() < deadline:
                pids |= _pids(app, 40)
            assert len(pids) == 2, supervisor.output()
            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            seen: set[int] = set()
            while time.monotonic() < deadline and not (seen - pids):
                seen |= _pids(app, 20)
            assert seen - pids, supervisor.output()  # a new worker process took over
            assert victim not in seen
        started = time.monotonic()
        assert supervisor.stop(timeout=30) == 0, supervisor.output()
        assert time.monotonic() - started < 30
    finally:
        supervisor.kill()
