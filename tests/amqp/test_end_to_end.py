"""The example tasks through RabbitMQ with the worker in another process, delays across a worker
restart, and poison messages published straight to the queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pika
import pytest

from machinery import App, Config, Signature, TaskFailed, chain
from machinery.brokers.base import REASON_HEADER, dead_letter_queue
from tests.support.amqp import amqp_config
from tests.support.effects import effects, recorded_at
from tests.support.processes import WorkerProcess, worker_process
from tests.support.waiting import TIMEOUT, eventually


@pytest.fixture(scope="module")
def example_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """An App on RabbitMQ with a worker for the example tasks running in another process."""
    tmp = tmp_path_factory.mktemp("examples")
    config = amqp_config(tmp)
    app = App(config)
    with worker_process(config, tmp / "worker.log", app_spec="examples.app:app"):
        yield app
    app.close()


def test_a_task_returns_its_result(example_app: App) -> None:
    assert example_app.send_task(Signature("add", [1, 1])).get(timeout=TIMEOUT) == 2


def test_a_success_callback_gets_the_result_first(example_app: App) -> None:
    callback = Signature("multiply", [10])
    example_app.send_task(Signature("add", [2, 3], on_success=[callback]))
    assert example_app.result(callback.uuid).get(timeout=TIMEOUT) == 50


def test_an_error_callback_gets_the_error_text_first(example_app: App) -> None:
    on_error = Signature("report_error", ["context"])
    failing = example_app.send_task(Signature("fail", [1, 2], on_error=[on_error]))
    with pytest.raises(TaskFailed, match="cannot process"):
        failing.get(timeout=TIMEOUT)
    assert "cannot process" in str(example_app.result(on_error.uuid).get(timeout=TIMEOUT))


def test_the_example_chain_gives_52(example_app: App) -> None:
    steps = (Signature("add", [1, 1]), Signature("add", [5, 6]), Signature("multiply", [4]))
    result = example_app.send_task(chain(*steps))
    assert result.get(timeout=TIMEOUT) == 52


def test_a_task_with_an_eta_runs_no_earlier_and_survives_a_worker_restart(tmp_path: Path) -> None:
    config = amqp_config(tmp_path)
    side = tmp_path / "effects.sqlite3"
    eta = datetime.now(timezone.utc) + timedelta(seconds=2)
    with App(config) as app:
        first = WorkerProcess(config, tmp_path / "worker.log", MACHINERY_TEST_EFFECTS=str(side))
        app.send_task(Signature("record", ["eta"]).delay_until(eta))
        time.sleep(0.7)
        assert first.stop() == 0
        assert effects(side) == []
        with worker_process(config, tmp_path / "worker.log", MACHINERY_TEST_EFFECTS=str(side)):
            assert eventually(lambda: effects(side) == ["eta"], timeout=TIMEOUT)
    [ran_at] = recorded_at(side)
    assert ran_at >= eta.timestamp()


def _publish_raw(config: Config, bodies: list[bytes]) -> None:
    """Publish ``bodies`` straight to the queue with pika, past machinery's encoder."""
    connection = pika.BlockingConnection(pika.URLParameters(config.broker_url))
    channel = connection.channel()
    for body in bodies:
        channel.basic_publish(config.exchange, config.binding_key, body, pika.BasicProperties(delivery_mode=2))
    connection.close()


def _dead_letters(config: Config, count: int) -> list[tuple[bytes, str]]:
    """The first ``count`` messages of the queue's dead-letter queue, with their reasons."""
    connection = pika.BlockingConnection(pika.URLParameters(config.broker_url))
    channel = connection.channel()
    out: list[tuple[bytes, str]] = []
    deadline = time.monotonic() + TIMEOUT
    while len(out) < count and time.monotonic() < deadline:
        method, props, body = channel.basic_get(dead_letter_queue(config.default_queue), auto_ack=True)
        if method is None or props is None or body is None:
            time.sleep(0.1)
            continue
        out.append((body, str((props.headers or {}).get(REASON_HEADER, ""))))
    connection.close()
    return out


def _task(name: str, *args: object) -> bytes:
    return json.dumps({"UUID": f"task_{name}_{time.monotonic_ns()}", "Name": name, "Args": list(args)}).encode()


def test_bad_messages_land_in_the_dead_letter_queue_with_their_reasons_and_the_rest_runs(tmp_path: Path) -> None:
    config = amqp_config(tmp_path)
    side = tmp_path / "effects.sqlite3"
    huge = b"\x00garbage" * (1 << 20)  # 8 MiB
    with App(config) as app:
        app.broker.declare([config.default_queue])
        poison = [b"\xff\xfe not json", b'{"Args": [1]}', _task("no_such_task", 1), huge]
        good = [_task("record", f"k{i}") for i in range(20)]
        _publish_raw(config, [good[0], *poison[:2], *good[1:10], *poison[2:], *good[10:]])
        with worker_process(config, tmp_path / "worker.log", MACHINERY_TEST_EFFECTS=str(side),
                            MACHINERY_MAX_REDELIVERIES="2", MACHINERY_UNREGISTERED_TIMEOUT="0") as worker:
            dead = _dead_letters(config, len(poison))
            assert eventually(lambda: len(effects(side)) >= 20, timeout=TIMEOUT), worker.output()
            assert worker.process.poll() is None
    assert sorted(body for body, _ in dead) == sorted(poison)
    reasons = {body: reason for body, reason in dead}
    assert all(reasons[body] for body in poison), reasons.values()
    assert "no_such_task" in reasons[poison[2]]
    assert sorted(effects(side)) == sorted(f"k{i}" for i in range(20))
