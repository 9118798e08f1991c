"""Poison messages published straight to the queue end in the dead-letter queue with their reason;
the worker stays up and other tasks still run. Run on every broker."""

from __future__ import annotations

import logging

import pytest

from machinery import App, Signature, TaskFailed, TaskState, encode
from machinery.brokers.base import REASON_HEADER, Delivery, dead_letter_queue
from tests.runtime.tasks import register_test_tasks
from tests.support.waiting import TIMEOUT, eventually
from tests.support.workers import running


def dead_letters(app: App, count: int) -> list[Delivery]:
    """Wait for ``count`` dead letters beside the default queue and read them."""
    queue = app.config.default_queue
    assert eventually(lambda: app.broker.depth(queue).dead >= count, timeout=TIMEOUT), app.broker.depth(queue)
    got = app.broker.fetch([dead_letter_queue(queue)], count + 1, 1.0)
    for d in got:
        app.broker.ack(d)
    return got


def test_garbage_bytes_are_dead_lettered_with_the_decode_error(app: App, caplog: pytest.LogCaptureFixture) -> None:
    register_test_tasks(app)
    with running(app):
        app.broker.publish(app.config.default_queue, b"\xff\xfe not json at all")
        (dead,) = dead_letters(app, 1)
        assert dead.body == b"\xff\xfe not json at all"
        assert "undecodable" in dead.headers[REASON_HEADER]
        assert "UTF-8" in dead.headers[REASON_HEADER]
        assert app.send_task(Signature("add", [1, 2])).get(timeout=TIMEOUT) == 3.0
    assert any(r.levelno == logging.ERROR and "dead-letter" in r.getMessage() for r in caplog.records)


def test_json_object_without_name_is_dead_lettered(app: App) -> None:
    register_test_tasks(app)
    with running(app):
        app.broker.publish(app.config.default_queue, b'{"UUID": "task_x", "Args": [1, 2]}')
        (dead,) = dead_letters(app, 1)
        assert "Name" in dead.headers[REASON_HEADER]
        assert app.send_task(Signature("add", [1, 2])).get(timeout=TIMEOUT) == 3.0


def test_unregistered_task_is_dead_lettered_after_bounded_redeliveries(app: App) -> None:
    register_test_tasks(app)
    app.config = app.config.replace(max_redeliveries=1, unregistered_timeout=0.0)
    unknown = Signature("no_such_task", [1])
    with running(app):
        app.broker.publish(app.config.default_queue, encode(unknown))
        assert app.send_task(Signature("add", [1, 2])).get(timeout=TIMEOUT) == 3.0
        (dead,) = dead_letters(app, 1)
        assert "no_such_task" in dead.headers[REASON_HEADER]
        assert "not registered" in dead.headers[REASON_HEADER]
        assert dead.body == encode(unknown)
        with pytest.raises(TaskFailed, match="not registered"):
            app.result(unknown.uuid).get(timeout=TIMEOUT)


def test_all_poison_together_leave_the_worker_running(app: App) -> None:
    register_test_tasks(app)
    app.config = app.config.replace(max_redeliveries=0, unregistered_timeout=0.0)
    queue = app.config.default_queue
    with running(app) as worker:
        for body in (b"", b"[]", b'{"Name": 5}', b"{" * 10_000, encode(Signature("nobody_has_it", []))):
            app.broker.publish(queue, body)
        results = [app.send_task(Signature("add", [i])) for i in range(5)]
        assert [r.get(timeout=TIMEOUT) for r in results] == [float(i) for i in range(5)]
        reasons = [d.headers[REASON_HEADER] for d in dead_letters(app, 5)]
        assert len(reasons) == 5
        assert not worker.stopping
    depth = app.broker.depth(queue)
    assert (depth.ready, depth.delayed, depth.in_flight) == (0, 0, 0)
    assert app.result(results[0].task_uuid).state is TaskState.SUCCESS
