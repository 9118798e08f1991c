"""On RabbitMQ a worker thread that takes the one delivery it fetched leaves no other thread
fetching meanwhile; the broker reports what arrives while nobody fetches (``on_arrival``) and an
idle thread fetches it. So a long task never holds back another task while a thread is free, and
a chain's steps wake only the thread that runs them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from machinery import App, Signature, chain
from tests.support.amqp import amqp_config
from tests.support.waiting import TIMEOUT, eventually
from tests.support.workers import running


def test_a_long_task_does_not_hold_back_others_while_a_thread_is_free(tmp_path: Path) -> None:
    app = App(amqp_config(tmp_path))
    release = threading.Event()
    started: list[str] = []

    @app.task(name="slow")
    def slow() -> str:
        started.append("slow")
        release.wait(TIMEOUT)
        return "slow"

    @app.task(name="quick")
    def quick(n: int) -> int:
        started.append(f"quick{n}")
        return n

    try:
        with running(app, concurrency=2) as worker:
            assert worker._lazy_fetch  # pyright: ignore[reportPrivateUsage]
            held = app.send_task(Signature("slow", []))
            assert eventually(lambda: started == ["slow"])
            time.sleep(0.2)  # the other thread sits idle, no fetch waiting
            for n in range(5):  # one at a time: each arrives while nobody fetches
                assert app.send_task(Signature("quick", [n])).get(timeout=5.0) == n  # slow holds on longer
            assert not release.is_set()
            release.set()
            assert held.get(timeout=TIMEOUT) == "slow"
    finally:
        release.set()
        app.close()


def test_chains_and_bursts_all_run_with_lazy_fetching(tmp_path: Path) -> None:
    app = App(amqp_config(tmp_path))

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    try:
        with running(app, concurrency=4):
            steps = chain(Signature("add", [0, 1]), *[Signature("add", [1]) for _ in range(9)])
            assert app.send_task(steps).get(timeout=TIMEOUT) == 10
            burst = app.send_tasks([Signature("add", [i, i]) for i in range(300)])
            assert [h.get(timeout=TIMEOUT) for h in burst] == [2 * i for i in range(300)]
    finally:
        app.close()
