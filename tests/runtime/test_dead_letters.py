"""Dead letters end to end on every broker: a worker dead-letters what it cannot run, the App and
``machinery dead`` list them (task, reason, when, deliveries), requeue them and they run; purge
empties the dead-letter queue."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from machinery import App, Config, Signature
from machinery.errors import BrokerError
from tests.runtime.brokers import sqlite_config
from tests.support.amqp import amqp_config
from tests.support.processes import REPO_ROOT, process_env
from tests.support.waiting import TIMEOUT, eventually
from tests.support.workers import running


def _impatient(config: Config) -> App:
    """An App whose worker dead-letters a task it has not registered at its first delivery."""
    return App(dataclasses.replace(config, max_redeliveries=0, unregistered_timeout=0))


def test_dead_letters_are_listed_requeued_and_run(broker_config: Config) -> None:
    with _impatient(broker_config) as app:
        @app.task
        def other() -> None: ...

        with running(app):
            result = app.send_task(Signature("late_add", [2, 3]))
            app.broker.publish(app.config.default_queue, b"{not json")
            assert eventually(lambda: len(app.dead_letters()) == 2)
        letters = {letter.task: letter for letter in app.dead_letters()}
        late, garbage = letters["late_add"], letters[""]
        assert late.task_uuid == result.task_uuid
        assert "'late_add' is not registered" in late.reason
        assert late.delivery_count == 1 and late.dead_at is not None
        assert late.signature is not None and late.signature.args == (2, 3)
        assert garbage.signature is None and garbage.reason.startswith("undecodable message")

        @app.task
        def late_add(a: int, b: int) -> int:
            return a + b

        assert app.requeue_dead([late.id]) == [late.id]
        with running(app):
            assert result.get(timeout=TIMEOUT) == 5
        assert [letter.id for letter in app.dead_letters()] == [garbage.id]
        assert app.purge_dead() == 1
        assert app.dead_letters() == []
        assert app.broker.depth(app.config.default_queue).dead == 0


def test_a_broker_without_dead_letter_tools_says_so() -> None:
    class Plain:
        pass

    from machinery.dead_letters import list_dead_letters

    with pytest.raises(BrokerError, match="cannot list, requeue or purge dead letters"):
        list_dead_letters(Plain(), "q")  # type: ignore[arg-type]


def _machinery(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "machinery", *args], cwd=REPO_ROOT, env=process_env(config),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.mark.parametrize("make_config", [sqlite_config, amqp_config], ids=["sqlite", "amqp"])
def test_the_dead_command_lists_shows_requeues_and_purges(make_config: object, tmp_path: Path) -> None:
    assert callable(make_config)
    config: Config = make_config(tmp_path)
    with _impatient(config) as app:
        with running(app):
            sent = {app.send_task(Signature("missing_task", [n])).task_uuid for n in (1, 2)}
            assert eventually(lambda: len(app.dead_letters()) == 2)
        ids = [letter.id for letter in app.dead_letters()]

        listed = _machinery(config, "dead", "list")
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0].split()[:3] == ["id", "task", "dead-lettered"]
        assert all(any(line.startswith(i) and "missing_task" in line and "not registered" in line
                       for line in lines[1:]) for i in ids)

        shown = _machinery(config, "dead", "show", ids[0])
        assert shown.returncode == 0, shown.stderr
        record = json.loads(shown.stdout)
        assert (record["id"], record["task"], record["delivery_count"]) == (ids[0], "missing_task", 1)
        assert record["task_uuid"] in sent

        assert _machinery(config, "dead", "show", "nope").returncode == 1
        assert _machinery(config, "dead", "requeue").returncode == 2

        requeued = _machinery(config, "dead", "requeue", ids[0])
        assert requeued.returncode == 0 and "requeued 1" in requeued.stdout, requeued.stderr
        assert app.broker.depth(config.default_queue).ready == 1
        assert [letter.id for letter in app.dead_letters()] == ids[1:]

        purged = _machinery(config, "dead", "purge")
        assert purged.returncode == 0 and "purged 1" in purged.stdout, purged.stderr
        assert app.dead_letters() == []
