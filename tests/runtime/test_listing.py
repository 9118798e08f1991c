"""Listing tasks without consuming them (Go Machinery's ``GetPendingTasks``/``GetDelayedTasks``):
``app.pending_tasks`` and ``app.delayed_tasks`` where the broker can list (SQLite, in-memory), a
clear ``BrokerError`` where it cannot (RabbitMQ), and ``machinery queues --list``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from machinery import App, Config, Signature
from machinery.errors import BrokerError
from tests.runtime.brokers import memory_config, sqlite_config
from tests.runtime.test_cli import machinery
from tests.support.amqp import amqp_config
from tests.support.processes import REPO_ROOT, process_env
from tests.support.waiting import TIMEOUT


@pytest.mark.parametrize("make_config", [sqlite_config, memory_config], ids=["sqlite", "memory"])
def test_pending_and_delayed_tasks_are_listed_and_left_in_place(
    tmp_path: Path, make_config: Callable[[Path], Config]
) -> None:
    with App(make_config(tmp_path)) as app:
        sent = [Signature("add", [i]) for i in range(3)]
        app.send_tasks(sent)
        later, sooner = Signature("add", ["later"]).countdown(600), Signature("add", ["sooner"]).countdown(300)
        app.send_tasks([later, sooner])
        for _ in range(2):  # listing takes nothing
            assert [s.uuid for s in app.pending_tasks()] == [s.uuid for s in sent]
            assert [s.args for s in app.delayed_tasks()] == [("sooner",), ("later",)]
        assert app.pending_tasks("another_queue") == []
        assert [s.uuid for s in app.pending_tasks(limit=2)] == [s.uuid for s in sent[:2]]


def test_rabbitmq_says_it_cannot_list_without_consuming(tmp_path: Path) -> None:
    with App(amqp_config(tmp_path)) as app:
        with pytest.raises(BrokerError, match="cannot list messages without consuming"):
            app.pending_tasks()
        with pytest.raises(BrokerError, match="cannot list messages without consuming"):
            app.delayed_tasks()


def test_machinery_queues_list_prints_pending_and_delayed_tasks(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    with App(config) as app:
        waiting = app.send_task(Signature("multiply", [6, 7]))
        delayed = app.send_task(Signature("notify", ["soon"]).countdown(120))
    out = machinery(config, "queues", "--list")
    assert out.returncode == 0, out.stderr
    pending_part, delayed_part = out.stdout.split("delayed:")
    assert f"{waiting.task_uuid}  multiply(6, 7)" in pending_part
    assert f"{delayed.task_uuid}  notify('soon')  due " in delayed_part


def test_machinery_queues_list_on_rabbitmq_is_one_error_line_and_status_1(tmp_path: Path) -> None:
    out = machinery(amqp_config(tmp_path), "queues", "--list")
    assert out.returncode == 1
    assert "pending in" not in out.stdout  # no header over a list that cannot come
    assert out.stderr.strip().splitlines()[-1] == (
        "machinery queues: error: cannot list tasks: AMQPBroker cannot list messages without consuming them"
    )


def test_a_go_mode_argument_go_cannot_carry_is_bad_input(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "machinery", "send", "echo", '{"a": 1}'], cwd=REPO_ROOT,
        env=process_env(config, MACHINERY_WIRE_FORMAT="go"), capture_output=True, text=True, timeout=TIMEOUT,
        check=False,
    )
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("machinery send: error: message.Args[0]: an object has no Go Machinery v1 type")
