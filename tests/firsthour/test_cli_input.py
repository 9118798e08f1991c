"""Bad command-line input is one line on stderr and status 2: malformed JSON arguments, a task id
that is not one, an ``-A`` naming nothing, broken YAML (with its line). ``--version`` works."""

from __future__ import annotations

from pathlib import Path

import pytest

import machinery
from machinery import App, TaskResult, TaskState, new_task_id
from tests.firsthour.support import run_machinery, sqlite_config


def error_line(done: object) -> str:
    stderr: str = done.stderr  # type: ignore[attr-defined]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_version_names_the_release_and_the_build(tmp_path: Path) -> None:
    done = run_machinery(sqlite_config(tmp_path), "--version")
    assert done.returncode == 0
    build = "compiled hot path" if machinery.USING_EXTENSIONS else "pure-Python hot path"
    assert done.stdout.startswith(f"machinery {machinery.__version__} ({build}, Python 3.")


def test_a_malformed_json_argument_is_refused_not_sent_as_a_string(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    done = run_machinery(config, "send", "add", "1", "{bad")
    assert done.returncode == 2
    assert error_line(done) == (
        "machinery send: error: argument 2 '{bad' is not valid JSON "
        "(Expecting property name enclosed in double quotes, column 2); write a string as '\"text\"'"
    )
    assert done.stdout == ""
    queues = run_machinery(config, "queues")
    assert queues.stdout.splitlines()[1].split()[1] == "0"  # nothing was sent


def test_plain_words_are_still_string_arguments(tmp_path: Path) -> None:
    done = run_machinery(sqlite_config(tmp_path), "send", "concatenate", "hello", "world")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("task_")


def test_result_of_a_malformed_task_id_is_an_error(tmp_path: Path) -> None:
    done = run_machinery(sqlite_config(tmp_path), "result", "not-a-uuid")
    assert done.returncode == 2
    assert error_line(done) == (
        "machinery result: error: 'not-a-uuid' is not a task id (expected task_<uuid>, as printed by machinery send)"
    )


def test_result_of_a_well_formed_unknown_id_is_pending(tmp_path: Path) -> None:
    done = run_machinery(sqlite_config(tmp_path), "result", "task_0b6a8f3e-5a43-4e43-9d8c-2b1f1c6f9d10")
    assert (done.returncode, done.stdout.strip()) == (0, "PENDING")


@pytest.mark.parametrize("spelling", ["bare", "upper case", "bare and upper case"])
def test_result_finds_a_task_id_pasted_without_its_prefix_or_in_upper_case(tmp_path: Path, spelling: str) -> None:
    config = sqlite_config(tmp_path)
    task_id = new_task_id()
    with App(config) as app:
        assert app.backend is not None
        app.backend.set(TaskResult(task_id, TaskState.SUCCESS, "add", result=3))
    pasted = {"bare": task_id.removeprefix("task_"), "upper case": "task_" + task_id[5:].upper(),
              "bare and upper case": task_id[5:].upper()}[spelling]
    done = run_machinery(config, "result", pasted)
    assert (done.returncode, done.stdout.strip()) == (0, "SUCCESS 3"), done.stderr


def test_an_app_attribute_that_does_not_exist_says_so(tmp_path: Path) -> None:
    done = run_machinery(sqlite_config(tmp_path), "worker", "-A", "examples.app:nope")
    assert done.returncode == 2
    assert error_line(done) == (
        "machinery worker: error: module 'examples.app' has no attribute 'nope'; Apps in examples.app: app"
    )


def test_an_attribute_that_is_not_an_app_says_what_it_is(tmp_path: Path) -> None:
    done = run_machinery(sqlite_config(tmp_path), "worker", "-A", "examples.tasks:AddTask")
    assert done.returncode == 2
    assert error_line(done) == (
        "machinery worker: error: examples.tasks:AddTask is a class, not a machinery App; "
        "examples.tasks defines no App"
    )


def test_a_module_that_fails_on_import_is_named_with_the_line(tmp_path: Path) -> None:
    (tmp_path / "broken_tasks.py").write_text("VALUE = 1\nRATIO = VALUE / 0\n")
    done = run_machinery(sqlite_config(tmp_path), "worker", "-A", "broken_tasks:app", cwd=tmp_path)
    assert done.returncode == 2
    assert error_line(done) == (
        "machinery worker: error: cannot import 'broken_tasks': ZeroDivisionError: division by zero "
        "(broken_tasks.py, line 2)"
    )


def test_a_missing_module_says_where_it_was_looked_for(tmp_path: Path) -> None:
    done = run_machinery(sqlite_config(tmp_path), "worker", "-A", "no_such_tasks:app", cwd=tmp_path)
    assert done.returncode == 2
    assert error_line(done) == (
        f"machinery worker: error: cannot import 'no_such_tasks': no module named 'no_such_tasks' here "
        f"({tmp_path}) or on sys.path"
    )


def test_a_yaml_error_names_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("broker: sqlite:///x.db\ndefault_queue: [unclosed\nconcurrency: 2\n")
    done = run_machinery(sqlite_config(tmp_path), "--config", str(path), "queues")
    assert done.returncode == 2
    assert error_line(done) == (
        f"machinery queues: error: config file (from {path}): expected valid YAML "
        "(line 3, column 12: expected ',' or ']', but got ':')"
    )


def test_a_negative_timeout_is_a_usage_error(tmp_path: Path) -> None:
    done = run_machinery(sqlite_config(tmp_path), "send", "add", "1", "--wait", "--timeout", "-1")
    assert done.returncode == 2
    assert "expected a finite number of seconds >= 0, got -1" in done.stderr
