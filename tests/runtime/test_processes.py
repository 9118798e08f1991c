"""Workers in other processes, on the embedded SQLite default: the example chain, and a clean stop
on SIGTERM that gives back what was fetched but not started."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from machinery import App, Config, Signature, TaskState, chain
from tests.support.processes import REPO_ROOT, process_env, worker_command
from tests.support.waiting import TIMEOUT, eventually

#: On the embedded default only (``app`` and ``broker_config`` come from ``conftest.py``).
pytestmark = pytest.mark.parametrize("broker_config", ["sqlite"], indirect=True)


@pytest.fixture
def config(broker_config: Config) -> Config:
    return broker_config


def start_worker(config: Config, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        worker_command(*args, log_level="INFO"),
        cwd=REPO_ROOT, env=process_env(config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out.decode(errors="replace")


def test_example_chain_gives_52_with_a_worker_in_another_process(app: App, config: Config) -> None:
    proc = start_worker(config, "-c", "2")
    try:
        result = app.send_task(chain(Signature("add", [1, 1]), Signature("add", [5, 6]), Signature("multiply", [4])))
        assert result.get(timeout=TIMEOUT) == 52.0
        assert [step.state for step in result.steps] == [TaskState.SUCCESS] * 3
    finally:
        code, out = stop(proc)
    assert code == 0, out
    assert "task multiply[" in out and "SUCCESS" in out


def test_sigterm_lets_the_running_task_finish_and_gives_back_the_rest(app: App, config: Config) -> None:
    proc = start_worker(config, "-c", "1")
    try:
        results = [app.send_task(Signature("sleep", [1.0])) for _ in range(4)]
        assert eventually(lambda: results[0].state is TaskState.STARTED, timeout=TIMEOUT)
        code, out = stop(proc)  # one SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, out
    assert results[0].state is TaskState.SUCCESS
    assert [r.state for r in results[1:]] == [TaskState.PENDING] * 3
    depth = app.broker.depth(config.default_queue)
    assert (depth.ready, depth.in_flight) == (3, 0), out


def test_worker_started_again_runs_what_was_given_back(app: App, config: Config) -> None:
    results = [app.send_task(Signature("add", [i])) for i in range(3)]
    proc = start_worker(config, "-c", "2")
    try:
        assert [r.get(timeout=TIMEOUT) for r in results] == [0.0, 1.0, 2.0]
    finally:
        code, out = stop(proc)
    assert code == 0, out


def test_second_signal_exits_at_once(app: App, config: Config) -> None:
    proc = start_worker(config, "-c", "1")
    try:
        result = app.send_task(Signature("sleep", [30.0]))
        assert eventually(lambda: result.state is TaskState.STARTED, timeout=TIMEOUT)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
        stop(proc)
    assert code == 128 + signal.SIGTERM
    assert result.state is TaskState.STARTED
    assert app.broker.depth(config.default_queue).in_flight == 1  # back once its lease runs out
