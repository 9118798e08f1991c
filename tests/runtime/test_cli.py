"""The ``machinery`` command line: help everywhere, one-line errors with a non-zero status, and
send/result/queues against a worker in another process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from machinery import Config
from machinery.cli import main, parse_arg
from tests.runtime.brokers import sqlite_config
from tests.support.processes import REPO_ROOT, process_env, worker_command
from tests.support.waiting import TIMEOUT


def machinery(config: Config, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "machinery", *args], cwd=REPO_ROOT, env=process_env(config),
        capture_output=True, text=True, timeout=timeout, check=False,
    )


@pytest.mark.parametrize("command", [[], ["worker"], ["send"], ["result"], ["queues"], ["demo"], ["dead"],
                                     ["dead", "list"], ["dead", "requeue"], ["revoke"], ["beat"]])
def test_help_everywhere(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: machinery" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["worker", "-A", "no_such_module_xyz:app"], "cannot import 'no_such_module_xyz'"),
        (["worker", "-A", "examples.app"], "module:attribute"),
        (["worker", "-A", "examples.app:missing"], "has no attribute 'missing'"),
        (["--config", "/nonexistent/machinery.yml", "queues"], "/nonexistent/machinery.yml"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_status(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status = main(argv)
    err = capsys.readouterr().err
    assert status != 0
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["worker"], ["worker", "-A", "examples.app:app", "-c", "0"], ["bogus"], ["send"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_bad_environment_value_is_reported_without_traceback(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    env = process_env(config, MACHINERY_CONCURRENCY="lots")
    done = subprocess.run([sys.executable, "-m", "machinery", "queues"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 2  # bad input: the configuration
    assert "MACHINERY_CONCURRENCY" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("text", "value"), [("1", 1), ("2.5", 2.5), ('"x"', "x"), ("hello", "hello"), ("[1, 2]", [1, 2]), ("null", None)]
)
def test_send_args_are_json_or_strings(text: str, value: object) -> None:
    assert parse_arg(text) == value


def test_send_wait_result_and_queues_with_a_worker_process(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    worker = subprocess.Popen(worker_command("-c", "1", log_level="INFO"), cwd=REPO_ROOT,
                              env=process_env(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sent = machinery(config, "send", "add", "1", "2.5", "--wait")
        assert sent.returncode == 0, sent.stderr
        uuid, value = sent.stdout.split()
        assert uuid.startswith("task_")
        assert json.loads(value) == 3.5

        shown = machinery(config, "result", uuid)
        assert shown.stdout.split() == ["SUCCESS", "3.5"]

        failed = machinery(config, "send", "fail", "oops", "--wait")
        assert failed.returncode == 1
        assert "FAILURE: cannot process ['oops']" in failed.stderr

        queued = machinery(config, "queues")
        assert queued.returncode == 0
        assert config.default_queue in queued.stdout
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=TIMEOUT) == 0


def test_send_wait_times_out_without_a_worker(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    sent = machinery(config, "send", "add", "1", "--wait", "--timeout", "0.3")
    assert sent.returncode == 1
    assert "did not finish" in sent.stderr


def test_result_of_an_unknown_task_is_pending(tmp_path: Path) -> None:
    shown = machinery(sqlite_config(tmp_path), "result", "task_6c1e0b9e-8f0e-4d5c-9a59-3f0c2f3f6d21")
    assert (shown.returncode, shown.stdout.strip()) == (0, "PENDING")


def test_demo_prints_the_example_results_and_stops_cleanly(tmp_path: Path) -> None:
    done = machinery(sqlite_config(tmp_path), "demo", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "add(1, 1) = 2" in done.stdout
    assert "= 52" in done.stdout
    assert "error callback" in done.stdout
    assert "worker stopped cleanly" in done.stdout
