"""``machinery beat`` as processes: with two schedulers on one SQLite file, each due run of a
periodic entry (from the YAML config) is sent exactly once, also when one scheduler is killed with
SIGKILL (the other takes its runs over when their lease runs out): no run twice, none missing."""

from __future__ import annotations

import itertools
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import datetime
from pathlib import Path

import yaml

from machinery import App
from machinery._speedups import decode
from machinery.beat import PERIODIC_HEADER
from tests.runtime.brokers import sqlite_config
from tests.support.processes import REPO_ROOT, process_env, worker_process
from tests.support.waiting import TIMEOUT, eventually


def _beat(config_file: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "machinery", "--config", str(config_file), "beat", "--lease", "1.5"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_each_tick_is_sent_once_by_two_schedulers_when_one_is_killed(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    config_file = tmp_path / "machinery.yml"
    config_file.write_text(yaml.safe_dump({"periodic": {"tick": {"every": 1, "task": "tick", "args": [1]}}}))
    env = process_env(config)
    with App(config) as app:
        queue = app.config.default_queue

        def sent() -> int:
            return app.broker.depth(queue).ready

        first, second = _beat(config_file, env), _beat(config_file, env)
        try:
            assert eventually(lambda: sent() >= 3, timeout=TIMEOUT)
            first.send_signal(signal.SIGKILL)
            first.wait(TIMEOUT)
            killed_at = sent()
            assert eventually(lambda: sent() >= killed_at + 4, timeout=TIMEOUT)
        finally:
            for process in (first, second):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            output = second.communicate(timeout=TIMEOUT)[0]
            first.communicate(timeout=TIMEOUT)
        assert second.returncode == 0, output
        assert first.returncode == -signal.SIGKILL

        due: list[float] = []
        while deliveries := app.broker.fetch([queue], 100, 0.2):
            for delivery in deliveries:
                sig = decode(delivery.body)
                assert (sig.name, sig.args) == ("tick", (1,))
                name, _, when = str(sig.headers[PERIODIC_HEADER]).partition("@")
                assert name == "tick"
                due.append(datetime.fromisoformat(when).timestamp())
            app.broker.ack_many(deliveries)
    due.sort()
    assert len(due) >= 7
    assert len(set(due)) == len(due), f"a tick was sent twice: {due}"
    assert [b - a for a, b in itertools.pairwise(due)] == [1.0] * (len(due) - 1), f"a tick is missing: {due}"


def test_a_worker_with_beat_sends_and_runs_the_periodic_work(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    config_file = tmp_path / "machinery.yml"
    config_file.write_text(yaml.safe_dump({"periodic": {"sum": {"every": 0.5, "task": "add", "args": [1, 2]}}}))
    with App(config) as app:
        assert app.backend is not None  # its tables exist from here on
        backend_file = config.result_backend.removeprefix("sqlite:///")

        def successes() -> int:
            with closing(sqlite3.connect(backend_file)) as db:
                sql = "SELECT result FROM machinery_results WHERE state = 'SUCCESS' AND name = 'add'"
                rows = db.execute(sql).fetchall()
            assert all(row[0] == "3.0" for row in rows), rows
            return len(rows)

        with worker_process(config, tmp_path / "worker.log", "--beat", MACHINERY_CONFIG=str(config_file)) as worker:
            assert eventually(lambda: successes() >= 3, timeout=TIMEOUT)
            assert worker.stop() == 0, worker.output()
        assert app.broker.depth(config.default_queue).ready == 0


def test_beat_with_nothing_to_schedule_says_so(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    done = subprocess.run([sys.executable, "-m", "machinery", "beat"], cwd=REPO_ROOT, env=process_env(config),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == ("machinery beat: error: nothing to schedule: no periodic entries in the "
                                   "config's periodic section or the App")
