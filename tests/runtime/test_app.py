"""The App and the Worker's mechanics on the in-memory broker: registering, sending (queue, ETA,
batching, nothing written on send), results without a backend, fetch limits, lease renewal."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from machinery import (
    App,
    Config,
    ConfigError,
    ResultBackendError,
    ResultTimeout,
    Signature,
    TaskState,
    chord,
    decode,
    init_app,
)
from machinery.backends.memory import MemoryBackend
from machinery.brokers.base import Delivery, OutgoingMessage, QueueDepth
from machinery.brokers.memory import MemoryBroker
from tests.runtime.brokers import memory_config
from tests.runtime.tasks import register_test_tasks
from tests.support.waiting import TIMEOUT, eventually
from tests.support.workers import running


class RecordingBroker(MemoryBroker):
    """A MemoryBroker that records how it is called."""

    def __init__(self, *, visibility_timeout: float = 30.0) -> None:
        super().__init__(visibility_timeout=visibility_timeout)
        self.publish_many_calls = 0
        self.fetch_sizes: list[int] = []
        self.extended = 0

    def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        self.publish_many_calls += 1
        super().publish_many(messages)

    def fetch(self, queues: Sequence[str], max_messages: int, timeout: float) -> list[Delivery]:
        self.fetch_sizes.append(max_messages)
        return super().fetch(queues, max_messages, timeout)

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        self.extended += len(deliveries)
        super().extend(deliveries)


def make_app(tmp_path: Path, **changes: object) -> tuple[App, RecordingBroker, MemoryBackend]:
    config = memory_config(tmp_path).replace(**changes)
    broker = RecordingBroker(visibility_timeout=config.visibility_timeout)
    backend = MemoryBackend()
    return App(config, broker=broker, backend=backend), broker, backend


def test_init_app_is_an_app(tmp_path: Path) -> None:
    assert isinstance(init_app(memory_config(tmp_path)), App)


def test_decorated_function_stays_callable(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)

    @app.task
    def subtract(a: int, b: int) -> int:
        return a - b

    assert subtract(5, 3) == 2
    assert subtract.name == "subtract"
    assert "subtract" in app.registry
    assert subtract.s(5, 3).name == "subtract"


def test_decorator_with_a_name(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)

    @app.task(name="sub")
    def subtract(a: int, b: int) -> int:
        return a - b

    assert app.registry.names() == ["sub"]
    with running(app):
        assert subtract.delay(7, 2).get(timeout=TIMEOUT) == 5


def test_register_tasks_registers_all_or_none(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    app.register_task("add", lambda *a: sum(a))
    with pytest.raises(ValueError, match="already registered"):
        app.register_tasks({"mul": lambda *a: 1, "add": lambda *a: 0})
    assert app.registry.names() == ["add"]


def test_send_goes_to_the_routing_key_or_the_default_queue(tmp_path: Path) -> None:
    app, broker, _ = make_app(tmp_path)
    app.send_task(Signature("add", [1]))
    app.send_task(Signature("add", [2], routing_key="elsewhere"))
    assert broker.depth(app.config.default_queue).ready == 1
    assert broker.depth("elsewhere").ready == 1


def test_sending_writes_no_state(tmp_path: Path) -> None:
    app, _, backend = make_app(tmp_path)
    result = app.send_task(Signature("add", [1]))
    assert backend.get(result.task_uuid) is None
    assert result.state is TaskState.PENDING
    assert not result.ready()


def test_eta_becomes_a_broker_delay(tmp_path: Path) -> None:
    app, broker, _ = make_app(tmp_path)
    app.send_task(Signature("add", [1]).countdown(60))
    depth = broker.depth(app.config.default_queue)
    assert (depth.ready, depth.delayed) == (0, 1)


def test_priority_is_passed_to_the_broker(tmp_path: Path) -> None:
    app, broker, _ = make_app(tmp_path)
    low, high = Signature("add", [1]), Signature("add", [2], priority=9)
    app.send_tasks([low, high])
    first = broker.fetch([app.config.default_queue], 1, 0)
    assert decode(first[0].body).uuid == high.uuid


def test_send_tasks_batches_into_one_publish(tmp_path: Path) -> None:
    app, broker, _ = make_app(tmp_path)
    results = app.send_tasks([Signature("add", [i]) for i in range(10)])
    assert len(results) == 10
    assert broker.publish_many_calls == 1
    assert broker.depth(app.config.default_queue).ready == 10


def test_get_without_a_backend_says_so(tmp_path: Path) -> None:
    app = App(memory_config(tmp_path).replace(result_backend="none"))
    result = app.send_task(Signature("add", [1]))
    with pytest.raises(ResultBackendError, match="no result backend"):
        result.get(timeout=1)


def test_chord_needs_a_backend(tmp_path: Path) -> None:
    app = App(memory_config(tmp_path).replace(result_backend="none"))
    with pytest.raises(ConfigError, match="chord"):
        app.send_task(chord([Signature("add", [1])], Signature("add", [])))


def test_get_times_out(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    result = app.send_task(Signature("add", [1]))
    started = time.monotonic()
    with pytest.raises(ResultTimeout):
        result.get(timeout=0.2)
    assert time.monotonic() - started < 2.0


def test_worker_without_backend_still_runs_callbacks(tmp_path: Path) -> None:
    config = memory_config(tmp_path).replace(result_backend="none")
    app = App(config)
    done = threading.Event()
    got: list[object] = []

    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    @app.task
    def sink(value: int) -> None:
        got.append(value)
        done.set()

    with running(app):
        app.send_task(Signature("add", [1, 2], on_success=[Signature("sink", [])]))
        assert done.wait(TIMEOUT)
    assert got == [3]


def test_worker_fetches_only_free_slots_plus_prefetch(tmp_path: Path) -> None:
    app, broker, _ = make_app(tmp_path)
    register_test_tasks(app)
    app.send_tasks([Signature("add", [i]) for i in range(20)])
    worker = app.worker(concurrency=2, prefetch=1)
    worker.start()
    try:
        assert eventually(lambda: broker.depth(app.config.default_queue).ready == 0, timeout=TIMEOUT)
    finally:
        worker.stop(wait=True)
    assert max(broker.fetch_sizes) <= 3


def test_long_task_keeps_its_lease(tmp_path: Path) -> None:
    app, broker, _ = make_app(tmp_path, visibility_timeout=0.3)
    runs: list[int] = []

    @app.task
    def slow() -> str:
        runs.append(1)
        time.sleep(1.2)
        return "done"

    with running(app, concurrency=2):
        assert slow.delay().get(timeout=TIMEOUT) == "done"
    assert runs == [1]
    assert broker.extended >= 3


def test_stop_gives_back_fetched_but_unstarted_messages(tmp_path: Path) -> None:
    app, broker, _ = make_app(tmp_path)
    started = threading.Event()

    @app.task
    def block() -> None:
        started.set()
        time.sleep(0.5)

    results = app.send_tasks([block.s() for _ in range(4)])
    worker = app.worker(concurrency=1, prefetch=3)
    worker.start()
    assert started.wait(TIMEOUT)
    worker.stop(wait=True, timeout=TIMEOUT)
    depth: QueueDepth = broker.depth(app.config.default_queue)
    assert results[0].state is TaskState.SUCCESS
    assert (depth.ready, depth.in_flight) == (3, 0)


def test_states_are_recorded_while_running(tmp_path: Path) -> None:
    app, _, backend = make_app(tmp_path)
    release = threading.Event()

    @app.task
    def wait_for_release() -> int:
        release.wait(TIMEOUT)
        return 1

    with running(app):
        result = wait_for_release.delay()
        assert eventually(lambda: result.state is TaskState.STARTED, timeout=TIMEOUT)
        release.set()
        assert result.get(timeout=TIMEOUT) == 1
    stored = backend.get(result.task_uuid)
    assert stored is not None
    assert stored.name == "wait_for_release"


def test_config_repr_in_app_hides_passwords() -> None:
    app = App(Config(broker_url="amqp://guest:secret@h/", result_backend="none"))
    assert "secret" not in repr(app)
