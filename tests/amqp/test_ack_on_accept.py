"""With no result store, a worker on RabbitMQ acks each delivery as its follow-ups' confirms are
read (``Settler._ack_when_answered``), in batches and for lone chain steps: every follow-up runs,
and nothing is left unacknowledged to come back after the worker stops."""

from __future__ import annotations

import threading
from pathlib import Path

from machinery import App, Signature, chain
from tests.support.amqp import amqp_config
from tests.support.waiting import TIMEOUT, eventually
from tests.support.workers import running


def test_follow_ups_run_and_every_delivery_is_acked_without_a_result_store(tmp_path: Path) -> None:
    config = amqp_config(tmp_path).replace(result_backend="none")
    app = App(config)
    seen: list[str] = []
    lock = threading.Lock()

    @app.task(name="mark")
    def mark(tag: str) -> None:
        with lock:
            seen.append(tag)

    try:
        with running(app, concurrency=4):
            app.send_tasks([Signature("mark", [f"t{i}"], immutable=True,
                                      on_success=[Signature("mark", [f"f{i}"], immutable=True)])
                            for i in range(500)])
            app.send_task(chain(*[Signature("mark", [f"c{i}"], immutable=True) for i in range(10)]))
            expected = {f"t{i}" for i in range(500)} | {f"f{i}" for i in range(500)} | {f"c{i}" for i in range(10)}
            assert eventually(lambda: set(seen) == expected, timeout=TIMEOUT)
        with running(app, concurrency=1):  # a fresh consumer: anything not acked would come back
            assert eventually(lambda: app.broker.depth(config.default_queue).ready == 0)
        assert sorted(seen) == sorted(expected)  # each ran once: no delivery came back
    finally:
        app.close()
