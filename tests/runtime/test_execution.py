"""``Executor.process``: one delivery from decoding to its outcome, settled here (given back,
dead-lettered) or returned for the settler to store, publish and ack. In-memory broker and backend,
no worker: each test fetches the delivery, processes it and settles its outcome on this thread."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence

import pytest

from machinery import Config, Signature
from machinery._speedups import decode, encode
from machinery.backends.memory import MemoryBackend
from machinery.brokers.base import Delivery
from machinery.brokers.memory import MemoryBroker
from machinery.errors import Retry
from machinery.execution import Executor, as_json_result
from machinery.outcomes import RETRIES_HEADER, error_text
from machinery.registry import Registry
from machinery.settling import Settler
from machinery.states import TaskResult, TaskState
from tests.support.names import unique_name

QUEUE = "jobs"


class Recorder(MemoryBroker):
    """An in-memory broker that also notes how each delivery was settled."""

    def __init__(self) -> None:
        super().__init__()
        self.nacked: list[tuple[Delivery, float]] = []
        self.dead: list[tuple[Delivery, str]] = []

    def nack(self, delivery: Delivery, *, delay: float = 0.0) -> None:
        self.nacked.append((delivery, delay))
        super().nack(delivery, delay=delay)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self.dead.append((delivery, reason))
        super().dead_letter(delivery, reason)


class BrokenBackend(MemoryBackend):
    """A result store that fails with something other than ``ResultBackendError``."""

    def set_many(self, results: Sequence[TaskResult]) -> None:
        raise OSError("the store is broken")


class Run:
    """An executor and a settler over one broker and backend: ``handle`` processes a delivery and
    settles its outcome on this thread; True when an outcome was settled (acked or given back)."""

    def __init__(self, registry: Registry, broker: MemoryBroker, backend: MemoryBackend | None,
                 **config: object) -> None:
        self.executor = Executor(Config(default_queue=QUEUE, track_started=False, **config),  # type: ignore[arg-type]
                                 registry, broker, backend)
        self.settler = Settler(broker, backend, release=lambda _d: None, on_pause=lambda _p: None,
                               stopping=threading.Event())

    def handle(self, delivery: Delivery) -> bool:
        outcome = self.executor.process(delivery)
        if outcome is None:
            return False
        self.settler.settle_now([outcome])
        return True


@pytest.fixture
def broker() -> Iterator[Recorder]:
    b = Recorder()
    yield b
    b.close()


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def registry() -> Registry:
    r = Registry()
    r.register("add", lambda *args: sum(args))
    r.register("boom", _boom)
    r.register("nan", lambda: math.nan)
    r.register("obj", _not_json)
    return r


def _boom(*_args: object) -> None:
    raise ValueError("boom")


def _not_json() -> object:
    return object()


def executor(registry: Registry, broker: MemoryBroker, backend: MemoryBackend | None, **config: object) -> Run:
    return Run(registry, broker, backend, **config)


def deliver(broker: MemoryBroker, sig: Signature | bytes) -> Delivery:
    """Publish ``sig`` (or raw bytes) and fetch it back as a delivery."""
    broker.publish(QUEUE, sig if isinstance(sig, bytes) else encode(sig))
    [delivery] = broker.fetch([QUEUE], 1, 5.0)
    return delivery


def queued(broker: MemoryBroker) -> list[Signature]:
    """The messages waiting in the queue (fetched and acked)."""
    out = broker.fetch([QUEUE], 100, 0.0)
    broker.ack_many(out)
    return [decode(d.body) for d in out]


def state(backend: MemoryBackend, sig: Signature) -> TaskResult:
    result = backend.get(sig.uuid)
    assert result is not None
    return result


def test_error_text_is_the_message_or_else_the_class_name() -> None:
    assert error_text(ValueError("bad")) == "bad"
    assert error_text(KeyError()) == "KeyError"


def test_a_result_must_be_a_finite_json_value() -> None:
    assert as_json_result([1, {"a": 2.5}], "t") == (1, {"a": 2.5})
    with pytest.raises(TypeError, match="task t returned a value that is not JSON"):
        as_json_result(object(), "t")
    with pytest.raises(TypeError, match="task t returned nan"):
        as_json_result([1.0, math.nan], "t")


def test_a_success_is_recorded_and_its_callbacks_get_the_result_first(
    registry: Registry, broker: Recorder, backend: MemoryBackend
) -> None:
    callback = Signature("add", [10])
    sig = Signature("add", [1, 2], on_success=[callback])
    assert executor(registry, broker, backend).handle(deliver(broker, sig)) is True
    done = state(backend, sig)
    assert (done.state, done.result) == (TaskState.SUCCESS, 3)
    assert [(s.uuid, s.args) for s in queued(broker)] == [(callback.uuid, (3, 10))]
    assert broker.nacked == [] and broker.dead == []


def test_an_immutable_task_passes_no_result_to_its_callbacks(
    registry: Registry, broker: Recorder, backend: MemoryBackend
) -> None:
    callback = Signature("add", [10])
    sig = Signature("add", [1, 2], on_success=[callback], immutable=True)
    assert executor(registry, broker, backend).handle(deliver(broker, sig)) is True
    assert [s.args for s in queued(broker)] == [(10,)]


def test_a_failure_is_recorded_and_its_error_callbacks_get_the_error_text_first(
    registry: Registry, broker: Recorder, backend: MemoryBackend
) -> None:
    on_error = Signature("add", ["x"])
    sig = Signature("boom", [], on_error=[on_error])
    assert executor(registry, broker, backend).handle(deliver(broker, sig)) is True
    done = state(backend, sig)
    assert (done.state, done.error) == (TaskState.FAILURE, "boom")
    assert [(s.uuid, s.args) for s in queued(broker)] == [(on_error.uuid, ("boom", "x"))]


def test_a_result_that_is_not_json_is_a_failure(registry: Registry, broker: Recorder, backend: MemoryBackend) -> None:
    for name in ("nan", "obj"):
        sig = Signature(name, [])
        assert executor(registry, broker, backend).handle(deliver(broker, sig)) is True
        assert state(backend, sig).state == TaskState.FAILURE


def test_a_failing_task_with_retries_left_is_sent_again_with_a_delay_and_a_count(
    registry: Registry, broker: Recorder, backend: MemoryBackend
) -> None:
    sig = Signature("boom", [], retry_count=2, retry_timeout=0)
    assert executor(registry, broker, backend, retry_backoff_max=0.0).handle(deliver(broker, sig)) is True
    assert state(backend, sig).state == TaskState.RETRY
    [again] = queued(broker)
    assert (again.uuid, again.retry_count, again.headers[RETRIES_HEADER]) == (sig.uuid, 1, 1)


def test_retry_with_a_countdown_waits_that_long(registry: Registry, broker: Recorder, backend: MemoryBackend) -> None:
    def later() -> None:
        raise Retry(countdown=60.0)

    registry.register("later", later)
    sig = Signature("later", [], retry_count=1)
    assert executor(registry, broker, backend).handle(deliver(broker, sig)) is True
    assert queued(broker) == []  # held by the broker for a minute
    assert broker.depth(QUEUE).delayed == 1


def test_a_task_not_registered_is_given_back_then_dead_lettered_with_a_failure(
    registry: Registry, broker: Recorder, backend: MemoryBackend
) -> None:
    sig = Signature(unique_name("missing"), [])
    run = executor(registry, broker, backend, max_redeliveries=1, unregistered_timeout=0.0)
    first = deliver(broker, sig)
    assert run.handle(first) is False
    [(given_back, delay)] = broker.nacked
    assert given_back == first and 0.05 <= delay <= 0.15  # the first back-off, with jitter
    assert backend.get(sig.uuid) is None
    [second] = broker.fetch([QUEUE], 1, 5.0)
    assert second.delivery_count == 2
    assert run.handle(second) is False
    [(_d, reason)] = broker.dead
    assert reason.startswith(f"task {sig.name!r} is not registered (no worker took it in ")
    assert reason.endswith(", 2 deliveries)")
    assert state(backend, sig).state == TaskState.FAILURE


def test_a_task_not_registered_is_not_given_up_before_the_unregistered_timeout(
    registry: Registry, broker: Recorder, backend: MemoryBackend
) -> None:
    run = executor(registry, broker, backend, max_redeliveries=0, unregistered_timeout=3600.0)
    sig = Signature(unique_name("missing"), [])
    broker.publish(QUEUE, encode(sig))
    [delivery] = broker.fetch([QUEUE], 1, 5.0)
    many = Delivery(delivery.queue, delivery.body, delivery.tag, delivery_count=100)
    assert run.handle(many) is False
    assert broker.dead == [] and backend.get(sig.uuid) is None
    assert broker.nacked[0][1] >= 15.0  # the back-off has grown to its cap (30 s, jittered)


def test_a_message_asking_to_be_ignored_when_not_registered_is_dropped(
    registry: Registry, broker: Recorder, backend: MemoryBackend
) -> None:
    body = b'{"UUID":"task_x","Name":"elsewhere","Args":[],"IgnoreWhenTaskNotRegistered":true}'
    assert executor(registry, broker, backend).handle(deliver(broker, body)) is False
    assert broker.nacked == [] and broker.dead == [] and backend.get("task_x") is None
    assert broker.depth(QUEUE).ready == 0 and broker.depth(QUEUE).in_flight == 0


def test_an_undecodable_message_is_dead_lettered_with_the_reason(registry: Registry, broker: Recorder) -> None:
    assert executor(registry, broker, None).handle(deliver(broker, b"not json")) is False
    [(_delivery, reason)] = broker.dead
    assert reason.startswith("undecodable message: ")
    assert broker.depth(QUEUE).dead == 1


def test_an_outcome_that_cannot_be_stored_gives_the_delivery_back(registry: Registry, broker: Recorder) -> None:
    sig = Signature("add", [1], on_success=[Signature("add", [2])])
    delivery = deliver(broker, sig)
    assert executor(registry, broker, BrokenBackend()).handle(delivery) is True
    assert [(d.tag, delay > 0) for d, delay in broker.nacked] == [(delivery.tag, True)]
    depth = broker.depth(QUEUE)
    assert (depth.ready, depth.delayed) == (0, 1)  # no follow-up sent; the task itself runs again soon


def test_without_a_result_backend_callbacks_still_run(registry: Registry, broker: Recorder) -> None:
    callback = Signature("add", [1])
    assert executor(registry, broker, None).handle(deliver(broker, Signature("add", [2], on_success=[callback])))
    assert [s.args for s in queued(broker)] == [(2, 1)]
