"""Revoke: a pending or delayed task is not run (``REVOKED``, no callbacks), on every broker; the
revocation is kept in the result store, so workers started later (other Apps, other processes)
honour it; a chord containing a revoked member fails saying so; a finished task is left alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from machinery import App, Config, Signature, TaskFailed, TaskState, chord
from machinery.errors import MachineryError
from tests.runtime.brokers import sqlite_config
from tests.support.processes import REPO_ROOT, process_env
from tests.support.waiting import TIMEOUT, eventually
from tests.support.workers import running


def _register(app: App, ran: list[str]) -> None:
    @app.task
    def add(*numbers: int) -> int:
        ran.append(f"add{numbers}")
        return sum(numbers)

    @app.task
    def note(*args: object) -> None:
        ran.append(f"note{args}")


def _drained(app: App) -> bool:
    depth = app.broker.depth(app.config.default_queue)
    return depth.ready == 0 and depth.delayed == 0 and depth.in_flight <= 0


def test_a_revoked_delayed_task_is_not_run_nor_its_callbacks(app: App) -> None:
    ran: list[str] = []
    _register(app, ran)
    on_success, on_error = Signature("note", ["ok"]), Signature("note", ["failed"])
    sig = Signature("add", [1, 2], on_success=[on_success], on_error=[on_error]).countdown(1.0)
    result = app.send_task(sig)
    app.revoke(result.task_uuid, reason="changed my mind")
    assert result.state is TaskState.REVOKED
    with running(app):
        assert eventually(lambda: _drained(app), timeout=TIMEOUT)
        control = app.send_task(Signature("add", [5, 5]))
        assert control.get(timeout=TIMEOUT) == 10
    with pytest.raises(TaskFailed, match="revoked: changed my mind"):
        result.get(timeout=1)
    assert result.state is TaskState.REVOKED
    assert ran == ["add(5, 5)"]
    assert app.result(on_success.uuid).state is TaskState.PENDING
    assert app.result(on_error.uuid).state is TaskState.PENDING


def test_a_revocation_reaches_workers_of_other_apps_started_later(broker_config: Config) -> None:
    ran: list[str] = []
    with App(broker_config) as producer:
        result = producer.send_task(Signature("add", [1, 1]).countdown(1.5))
        producer.revoke(result.task_uuid)
        with App(broker_config) as first:
            _register(first, ran)
            with running(first):
                pass  # a worker came and went before the task was due
        with App(broker_config) as second:
            _register(second, ran)
            with running(second):
                assert eventually(lambda: _drained(second), timeout=TIMEOUT)
                assert second.send_task(Signature("add", [2, 2])).get(timeout=TIMEOUT) == 4
        assert ran == ["add(2, 2)"]
        assert producer.result(result.task_uuid).state is TaskState.REVOKED


def test_a_chord_with_a_revoked_member_fails_with_the_reason(app: App) -> None:
    ran: list[str] = []
    _register(app, ran)
    kept, revoked = Signature("add", [1, 1]), Signature("add", [2, 2])
    callback = Signature("add", [])
    result = app.send_task(chord([kept, revoked], callback))
    app.revoke(revoked.uuid, reason="not needed")
    with running(app):
        with pytest.raises(TaskFailed, match=r"revoked(: | \()not needed"):  # the member's or the chord's
            result.get(timeout=TIMEOUT)
        with pytest.raises(TaskFailed, match=f"member add\\[{revoked.uuid}\\] was revoked \\(not needed\\)"):
            app.result(result.task_uuid).get(timeout=TIMEOUT)
        assert eventually(lambda: _drained(app), timeout=TIMEOUT)
    assert ran == ["add(1, 1)"]


def test_revoking_a_finished_task_leaves_its_result(app: App) -> None:
    _register(app, [])
    with running(app):
        result = app.send_task(Signature("add", [3, 4]))
        assert result.get(timeout=TIMEOUT) == 7
    app.revoke(result.task_uuid)
    assert result.state is TaskState.SUCCESS


def test_revoke_without_a_result_store_says_what_it_needs() -> None:
    app = App(Config(broker_url="memory://no-results", result_backend="none"))
    with app, pytest.raises(MachineryError, match="revoking needs a result backend"):
        app.revoke("task_x")


def test_the_revoke_command_revokes_for_workers(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    ran: list[str] = []
    with App(config) as app:
        _register(app, ran)
        result = app.send_task(Signature("add", [1, 1]).countdown(1.0))
        done = subprocess.run([sys.executable, "-m", "machinery", "revoke", result.task_uuid, "--reason", "by hand"],
                              cwd=REPO_ROOT, env=process_env(config), capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
        assert done.returncode == 0, done.stderr
        assert f"revoked {result.task_uuid}" in done.stdout
        with running(app):
            assert eventually(lambda: _drained(app), timeout=TIMEOUT)
        with pytest.raises(TaskFailed, match="revoked: by hand"):
            result.get(timeout=1)
        assert ran == []
