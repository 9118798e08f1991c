"""RabbitMQ's ``consumer_timeout``: a delivery not acknowledged within it makes RabbitMQ close the
consuming channel (PRECONDITION_FAILED, 406) and deliver every unacked message again. Before, a
task longer than that ran again and again for ever (each run's ack was voided by the next close,
and the copies ran side by side). Now the worker reconnects, holds back a copy of a task still
running here, and acks a copy whose task already has its final state without running it again:
the long task runs once and the queue empties.

RabbitMQ 3.12+ also takes a per-queue ``x-consumer-timeout`` argument; the server on this machine
(3.10) does not, so this test starts a node of its own with ``consumer_timeout = 2000`` (and a
500 ms channel tick so the check runs in time)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from machinery import Config, Signature
from tests.faults.fault_app import make_app
from tests.faults.own_servers import RabbitNode
from tests.faults.support import T
from tests.support.names import unique_name
from tests.support.waiting import eventually
from tests.support.workers import running


@pytest.mark.slow
@pytest.mark.rabbitmq
def test_a_task_longer_than_the_consumer_timeout_runs_once_and_the_worker_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    advanced = "[{rabbit, [{channel_tick_interval, 500}]}]."
    node = RabbitNode(tmp_path / "node", "consumer-timeout", home=tmp_path / "home", conf="consumer_timeout = 2000",
                      advanced=advanced).start()
    try:
        url = node.url()
        queue = unique_name("tasks")
        config = Config(
            broker_url=url, result_backend=f"sqlite:///{tmp_path / 'results.sqlite3'}",
            exchange=unique_name("ex"), default_queue=queue, binding_key=queue,
        )
        app = make_app(config)
        try:
            with caplog.at_level(logging.INFO, logger="machinery"), running(app, concurrency=2):
                long = app.send_task(Signature("sleep", [5.0]))
                assert long.get(timeout=T) == 5.0
                assert eventually(lambda: "not running it again" in caplog.text, timeout=T)
                depth = app.broker.depth(queue)
                assert (depth.ready, depth.delayed, depth.dead) == (0, 0, 0)
                assert app.send_task(Signature("add", [1, 2])).get(timeout=T) == 3  # still consuming
            runs = [line for line in caplog.text.splitlines() if f"task sleep[{long.task_uuid}] SUCCESS in 5" in line]
            assert len(runs) == 1, caplog.text
            assert "PRECONDITION_FAILED" in caplog.text  # the timeout did fire
            assert "not running it again" in caplog.text
        finally:
            app.close()
    finally:
        node.stop()
