"""Workflow semantics through a real worker, on every broker: results, callbacks (the example's
immutability rule), error callbacks, chains that stop on failure, retries, groups, chords, ETA."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from machinery import App, Signature, TaskFailed, TaskState, chain, chord, group
from tests.runtime.tasks import Flaky, register_test_tasks
from tests.support.waiting import TIMEOUT, eventually
from tests.support.workers import running


def test_single_task_result(app: App) -> None:
    register_test_tasks(app)
    with running(app):
        assert app.send_task(Signature("add", [1, 1])).get(timeout=TIMEOUT) == 2.0


def test_example_chain_gives_52(app: App) -> None:
    register_test_tasks(app)
    with running(app):
        result = app.send_task(chain(Signature("add", [1, 1]), Signature("add", [5, 6]), Signature("multiply", [4])))
        assert result.get(timeout=TIMEOUT) == 52.0


def test_success_callback_gets_the_result_prepended(app: App) -> None:
    register_test_tasks(app)
    callback = Signature("echo", ["own"])
    with running(app):
        app.send_task(Signature("add", [2, 3], on_success=[callback]))
        assert app.result(callback.uuid).get(timeout=TIMEOUT) == [5.0, "own"]


def test_immutable_task_does_not_pass_its_result(app: App) -> None:
    register_test_tasks(app)
    callback = Signature("echo", ["own"])
    with running(app):
        app.send_task(Signature("add", [2, 3], immutable=True, on_success=[callback]))
        assert app.result(callback.uuid).get(timeout=TIMEOUT) == ["own"]


def test_error_callback_gets_the_error_text_first(app: App) -> None:
    register_test_tasks(app)
    on_error = Signature("echo", ["context"])
    with running(app):
        failed = app.send_task(Signature("fail", [1], on_error=[on_error]))
        with pytest.raises(TaskFailed) as info:
            failed.get(timeout=TIMEOUT)
        assert info.value.error == "failed on [1]"
        assert app.result(on_error.uuid).get(timeout=TIMEOUT) == ["failed on [1]", "context"]


def test_error_without_text_is_named_by_its_class(app: App) -> None:
    register_test_tasks(app)
    on_error = Signature("echo", [])
    with running(app):
        app.send_task(Signature("silent_fail", [], on_error=[on_error]))
        assert app.result(on_error.uuid).get(timeout=TIMEOUT) == ["KeyError"]


def test_failing_step_stops_the_chain(app: App) -> None:
    runs = register_test_tasks(app)
    steps = [Signature("add", [1]), Signature("fail", []), Signature("add", [2]), Signature("add", [3])]
    with running(app):
        result = app.send_task(chain(*steps))
        with pytest.raises(TaskFailed) as info:
            result.get(timeout=TIMEOUT)
        assert info.value.task_uuid == steps[1].uuid
        assert info.value.error == "failed on [1.0]"
        time.sleep(0.2)
    assert runs["add"] == 1
    assert [app.result(s.uuid).state for s in steps] == [
        TaskState.SUCCESS, TaskState.FAILURE, TaskState.PENDING, TaskState.PENDING,
    ]
    assert result.state is TaskState.FAILURE


def test_result_that_is_not_json_is_a_failure(app: App) -> None:
    register_test_tasks(app)
    with running(app):
        with pytest.raises(TaskFailed, match="not JSON"):
            app.send_task(Signature("not_json", [])).get(timeout=TIMEOUT)
        with pytest.raises(TaskFailed, match="nan"):
            app.send_task(Signature("nan", [])).get(timeout=TIMEOUT)


def test_wrong_arguments_are_a_failure_naming_the_task(app: App) -> None:
    register_test_tasks(app)
    with running(app), pytest.raises(TaskFailed, match="args\\[0\\]"):
        app.send_task(Signature("add", ["one"])).get(timeout=TIMEOUT)


def test_failing_task_is_retried_with_capped_back_off_until_it_succeeds(app: App) -> None:
    flaky = Flaky(2)
    app.register_task("flaky", flaky)
    app.config = app.config.replace(retry_backoff_max=0.1)
    with running(app):
        started = time.monotonic()
        result = app.send_task(Signature("flaky", [], retry_count=3))
        assert result.get(timeout=TIMEOUT) == "ok"
        assert time.monotonic() - started < 2.0
    assert flaky.runs == 3


def test_retry_raised_by_the_task_uses_its_countdown(app: App) -> None:
    flaky = Flaky(3, ask=True)
    app.register_task("flaky", flaky)
    with running(app):
        started = time.monotonic()
        assert app.send_task(Signature("flaky", [], retry_count=5)).get(timeout=TIMEOUT) == "ok"
        assert time.monotonic() - started < 2.0
    assert flaky.runs == 4


def test_state_is_retry_while_waiting_for_the_next_try(app: App) -> None:
    app.register_task("flaky", Flaky(1))
    with running(app):
        result = app.send_task(Signature("flaky", [], retry_count=1, retry_timeout=3))
        assert eventually(lambda: result.state is TaskState.RETRY, timeout=TIMEOUT)
        assert result.info().error == "flaky failure 1"


def test_spent_retries_end_in_failure_and_error_callbacks(app: App) -> None:
    flaky = Flaky(10, ask=True)
    app.register_task("flaky", flaky)
    register_test_tasks(app)
    on_error = Signature("echo", [])
    with running(app):
        result = app.send_task(Signature("flaky", [], retry_count=2, on_error=[on_error]))
        with pytest.raises(TaskFailed, match="not yet"):
            result.get(timeout=TIMEOUT)
        assert app.result(on_error.uuid).get(timeout=TIMEOUT) == ["not yet"]
    assert flaky.runs == 3


def test_retry_without_retry_count_fails_at_once(app: App) -> None:
    flaky = Flaky(10, ask=True)
    app.register_task("flaky", flaky)
    with running(app), pytest.raises(TaskFailed, match="not yet"):
        app.send_task(Signature("flaky", [])).get(timeout=TIMEOUT)
    assert flaky.runs == 1


def test_group_results_come_in_group_order(app: App) -> None:
    register_test_tasks(app)
    with running(app, concurrency=3):
        result = app.send_task(group(*[Signature("add", [i, i]) for i in range(6)]))
        assert result.get(timeout=TIMEOUT) == [float(2 * i) for i in range(6)]


def test_chord_callback_gets_every_result_in_order(app: App) -> None:
    register_test_tasks(app)
    with running(app, concurrency=3):
        result = app.send_task(chord([Signature("concatenate", [c]) for c in "abcd"], Signature("echo", ["end"])))
        assert result.get(timeout=TIMEOUT) == ["a", "b", "c", "d", "end"]


def test_eta_delays_the_task(app: App) -> None:
    register_test_tasks(app)
    with running(app):
        started = time.monotonic()
        sig = Signature("add", [1], eta=datetime.now(timezone.utc) + timedelta(seconds=0.6))
        assert app.send_task(sig).get(timeout=TIMEOUT) == 1.0
        assert time.monotonic() - started >= 0.5


def test_worker_consumes_only_its_queues(app: App) -> None:
    runs = register_test_tasks(app)
    with running(app):
        other = app.send_task(Signature("add", [1], routing_key=app.config.default_queue + "-other"))
        mine = app.send_task(Signature("add", [2]))
        assert mine.get(timeout=TIMEOUT) == 2.0
        time.sleep(0.2)
        assert other.state is TaskState.PENDING
    assert runs["add"] == 1
    assert app.broker.depth(app.config.default_queue + "-other").ready == 1
