"""How the Worker hands out work and settles it: task threads fetch for themselves, finished
deliveries are acknowledged in batches (soon, and never before their outcome is stored), and a
stop gives back what was fetched but not started."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from machinery import App, Signature
from machinery.backends.memory import MemoryBackend
from machinery.brokers.base import Delivery
from machinery.brokers.memory import MemoryBroker
from machinery.execution import Executor
from tests.runtime.brokers import memory_config
from tests.support.waiting import TIMEOUT, eventually
from tests.support.workers import running


class AckRecordingBroker(MemoryBroker):
    """A MemoryBroker that records its acknowledgements and the threads that fetch."""

    def __init__(self) -> None:
        super().__init__(visibility_timeout=5.0)
        self.ack_batches: list[int] = []
        self.single_acks = 0
        self.fetching_threads: set[str] = set()

    def fetch(self, queues: Sequence[str], max_messages: int, timeout: float) -> list[Delivery]:
        self.fetching_threads.add(threading.current_thread().name)
        return super().fetch(queues, max_messages, timeout)

    def ack(self, delivery: Delivery) -> None:
        self.single_acks += 1
        super().ack(delivery)

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        self.ack_batches.append(len(deliveries))
        super().ack_many(deliveries)


def make_app(tmp_path: Path) -> tuple[App, AckRecordingBroker, MemoryBackend]:
    broker, backend = AckRecordingBroker(), MemoryBackend()
    return App(memory_config(tmp_path), broker=broker, backend=backend), broker, backend


def test_many_quick_tasks_are_acknowledged_in_fewer_batches_than_tasks(tmp_path: Path) -> None:
    app, broker, _ = make_app(tmp_path)
    gate = threading.Event()

    @app.task
    def quick() -> int:
        gate.wait(TIMEOUT)
        return 1

    app.send_tasks([quick.s() for _ in range(200)])
    with running(app, concurrency=4):
        gate.set()
        assert eventually(lambda: sum(broker.ack_batches) == 200, timeout=TIMEOUT)
    assert len(broker.ack_batches) < 200
    assert broker.single_acks == 0
    assert broker.depth(app.config.default_queue).in_flight == 0


def test_a_finished_task_is_acknowledged_while_another_thread_stays_busy(tmp_path: Path) -> None:
    app, broker, _ = make_app(tmp_path)
    release = threading.Event()

    @app.task
    def hold() -> int:
        release.wait(TIMEOUT)
        return 1

    @app.task
    def quick() -> int:
        return 2

    with running(app, concurrency=2):
        held = hold.delay()
        assert eventually(lambda: broker.depth(app.config.default_queue).in_flight == 1, timeout=TIMEOUT)
        assert quick.delay().get(timeout=TIMEOUT) == 2
        assert eventually(lambda: sum(broker.ack_batches) == 1, timeout=TIMEOUT)
        assert broker.depth(app.config.default_queue).in_flight == 1
        release.set()
        assert held.get(timeout=TIMEOUT) == 1


def test_an_acknowledgement_never_comes_before_the_result_is_stored(tmp_path: Path) -> None:
    app, broker, backend = make_app(tmp_path)
    stored_before_ack: list[bool] = []
    original = broker.ack_many

    def checking_ack_many(deliveries: Sequence[Delivery]) -> None:
        stored_before_ack.extend(backend.get(d_uuid) is not None for d_uuid in uuids_of(deliveries))
        original(deliveries)

    broker.ack_many = checking_ack_many  # type: ignore[method-assign]

    @app.task
    def quick(i: int) -> int:
        return i

    results = app.send_tasks([quick.s(i) for i in range(50)])
    with running(app, concurrency=3):
        assert [r.get(timeout=TIMEOUT) for r in results] == list(range(50))
        assert eventually(lambda: len(stored_before_ack) == 50, timeout=TIMEOUT)
    assert all(stored_before_ack)


def uuids_of(deliveries: Sequence[Delivery]) -> list[str]:
    from machinery import decode

    return [decode(d.body).uuid for d in deliveries]


def test_with_one_thread_tasks_run_and_fetch_on_one_task_thread_not_the_workers(tmp_path: Path) -> None:
    """Never on the thread that called run(): a KeyboardInterrupt in a task is then the task's own,
    and a task given up at its time limit cannot take the worker's own thread with it."""
    app, broker, _ = make_app(tmp_path)
    ran_on: list[str] = []

    @app.task
    def where() -> None:
        ran_on.append(threading.current_thread().name)

    with running(app, concurrency=1):
        where.delay().get(timeout=TIMEOUT)
    assert ran_on == ["machinery-task-1"]
    assert broker.fetching_threads == {"machinery-task-1"}


def test_task_threads_fetch_for_themselves_without_a_fetching_thread(tmp_path: Path) -> None:
    app, broker, _ = make_app(tmp_path)

    @app.task
    def quick() -> int:
        return 1

    results = app.send_tasks([quick.s() for _ in range(30)])
    with running(app, concurrency=3):
        assert all(r.get(timeout=TIMEOUT) == 1 for r in results)
    assert broker.fetching_threads <= {"machinery-worker", "machinery-task-1", "machinery-task-2"}


def test_process_leaves_the_acknowledgement_to_the_caller(tmp_path: Path) -> None:
    app, broker, backend = make_app(tmp_path)

    @app.task
    def quick() -> int:
        return 1

    executor = Executor(app.config, app.registry, broker, backend)
    app.send_tasks([quick.s(), quick.s()])
    first, second = broker.fetch([app.config.default_queue], 2, 5.0)
    assert executor.process(first) is True
    assert broker.single_acks == 0
    assert broker.depth(app.config.default_queue).in_flight == 2
    assert executor.process(second) is True
    broker.ack_many([first, second])
    assert broker.depth(app.config.default_queue).in_flight == 0


def test_process_of_an_undecodable_message_dead_letters_it_and_owes_no_ack(tmp_path: Path) -> None:
    app, broker, backend = make_app(tmp_path)
    executor = Executor(app.config, app.registry, broker, backend)
    broker.publish(app.config.default_queue, b"not json")
    [delivery] = broker.fetch([app.config.default_queue], 1, 5.0)
    assert executor.process(delivery) is False
    assert broker.depth(app.config.default_queue).dead == 1


def test_stop_gives_back_fetched_messages_with_many_threads(tmp_path: Path) -> None:
    app, broker, _ = make_app(tmp_path)
    started = threading.Event()
    release = threading.Event()

    @app.task
    def block() -> None:
        started.set()
        release.wait(TIMEOUT)

    app.send_tasks([block.s() for _ in range(2)] + [Signature("block", []) for _ in range(8)])
    worker = app.worker(concurrency=2, prefetch=8)
    worker.start()
    assert started.wait(TIMEOUT)
    assert eventually(lambda: broker.depth(app.config.default_queue).ready == 0, timeout=TIMEOUT)
    worker.stop()
    release.set()
    worker.stop(wait=True, timeout=TIMEOUT)
    depth = broker.depth(app.config.default_queue)
    assert depth.in_flight == 0
    assert depth.ready == 10 - sum(broker.ack_batches)
    assert depth.ready >= 6
