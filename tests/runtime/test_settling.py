"""The settler: for every task, its result is stored, then its follow-ups are accepted by the
broker, then its delivery is acked; results are written in batches; a lone task's result is
written at once; an unreachable result store holds results (no re-runs) and pauses the worker;
GroupResult reads its members in batches. In-memory broker and backend wrapped to record events."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from machinery import App, GroupResult, Signature
from machinery.backends.base import READ_CHUNK
from machinery.backends.memory import MemoryBackend
from machinery.brokers.base import Delivery, OutgoingMessage, PendingPublish
from machinery.brokers.memory import MemoryBroker
from machinery.errors import BrokerError, ResultBackendError
from machinery.execution import Executor, Outcome
from machinery.result import AsyncResult
from machinery.settling import Settler
from machinery.states import TaskResult, TaskState
from tests.runtime.brokers import memory_config
from tests.support.waiting import TIMEOUT, eventually
from tests.support.workers import running


class Events:
    """One ordered log of what the broker and the backend were asked to do."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[str, str]] = []

    def add(self, kind: str, key: str) -> None:
        with self.lock:
            self.log.append((kind, key))


class RecordingBroker(MemoryBroker):
    """Records publishes (by body) and acks (by delivery body); can refuse publishes."""

    def __init__(self, events: Events) -> None:
        super().__init__(visibility_timeout=5.0)
        self.events = events
        self.refuse = False
        self.nacked: list[Delivery] = []

    def publish_begin(self, messages: Sequence[OutgoingMessage]) -> PendingPublish:
        if self.refuse:
            raise BrokerError("refused")
        for m in messages:
            self.events.add("publish", m.body.decode())
        return super().publish_begin(messages)

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            self.events.add("ack", d.body.decode())
        super().ack_many(deliveries)

    def nack(self, delivery: Delivery, *, delay: float = 0.0) -> None:
        self.nacked.append(delivery)
        super().nack(delivery, delay=delay)


class RecordingBackend(MemoryBackend):
    """Records writes (batch sizes and the threads that made them); fails ``down`` more writes."""

    def __init__(self, events: Events) -> None:
        super().__init__()
        self.events = events
        self.down = 0
        self.batches: list[tuple[int, str]] = []
        self.reads: Counter[str] = Counter()

    def set_many(self, results: Sequence[TaskResult]) -> None:
        if self.down:
            self.down -= 1
            raise ResultBackendError("the store is away")
        self.batches.append((len(results), threading.current_thread().name))
        for r in results:
            self.events.add("store", r.task_uuid)
        super().set_many(results)

    def get(self, task_uuid: str) -> TaskResult | None:
        self.reads["get"] += 1
        return super().get(task_uuid)

    def get_many(self, task_uuids: Sequence[str]) -> list[TaskResult | None]:
        self.reads["get_many"] += 1
        return super().get_many(task_uuids)


def settler_for(broker: MemoryBroker, backend: MemoryBackend | None, **options: float) -> Settler:
    return Settler(broker, backend, release=lambda _d: None, on_pause=lambda _p: None, stopping=threading.Event(),
                   **options)  # type: ignore[arg-type]


def outcome(broker: MemoryBroker, name: str, *, follow_up: bool = True) -> Outcome:
    broker.publish("q", name.encode())
    [delivery] = broker.fetch(["q"], 1, 5.0)
    follow_ups = [OutgoingMessage("next", f"after-{name}".encode())] if follow_up else []
    return Outcome(delivery, name, [TaskResult(name, TaskState.SUCCESS, result=1)], follow_ups)


def test_each_task_is_stored_then_followed_up_then_acked() -> None:
    events = Events()
    broker, backend = RecordingBroker(events), RecordingBackend(events)
    settler = settler_for(broker, backend)
    settler.settle_now([outcome(broker, f"t{i}") for i in range(5)])
    for i in range(5):
        order = [kind for kind, key in events.log if key in (f"t{i}", f"after-t{i}")]
        assert order == ["store", "publish", "ack"], order
    assert backend.batches[0][0] == 5  # one write for the batch
    assert backend.follow_ups_sent("t3")


def test_follow_ups_not_accepted_mean_no_ack_and_the_task_runs_again() -> None:
    events = Events()
    broker, backend = RecordingBroker(events), RecordingBackend(events)
    broker.refuse = True
    settler = settler_for(broker, backend)
    settler.settle_now([outcome(broker, "t")])
    assert [kind for kind, _ in events.log] == ["store"]
    assert len(broker.nacked) == 1
    assert backend.follow_ups_sent("t") is False


def test_results_are_held_while_the_store_is_away_then_stored_and_acked_once() -> None:
    events = Events()
    broker, backend = RecordingBroker(events), RecordingBackend(events)
    backend.down = 3
    pauses: list[bool] = []
    settler = Settler(broker, backend, release=lambda _d: None, on_pause=pauses.append, stopping=threading.Event())
    settler.settle_now([outcome(broker, "t", follow_up=False)])
    assert pauses == [True, False]
    assert [kind for kind, _ in events.log] == ["store", "ack"]
    assert broker.nacked == []


def test_a_stopping_settler_gives_held_deliveries_back_after_its_grace() -> None:
    events = Events()
    broker, backend = RecordingBroker(events), RecordingBackend(events)
    backend.down = 10**6
    stopping = threading.Event()
    stopping.set()
    settler = Settler(broker, backend, release=lambda _d: None, on_pause=lambda _p: None, stopping=stopping,
                      stop_grace=0.2)
    settler.settle_now([outcome(broker, "t")])
    assert len(broker.nacked) == 1
    assert [kind for kind, _ in events.log if kind != "store"] == []


def test_a_lone_task_writes_its_result_on_its_own_thread_and_many_are_written_in_batches(tmp_path: Path) -> None:
    events = Events()
    broker, backend = RecordingBroker(events), RecordingBackend(events)
    app = App(memory_config(tmp_path), broker=broker, backend=backend)
    gate = threading.Event()

    @app.task
    def quick(wait: bool) -> int:
        if wait:
            gate.wait(TIMEOUT)
        return 1

    with running(app, concurrency=2):
        assert quick.delay(False).get(timeout=TIMEOUT) == 1
        assert backend.batches[-1][1].startswith("machinery-task") or backend.batches[-1][1] == "machinery-worker"
        results = app.send_tasks([quick.s(True) for _ in range(300)])
        gate.set()
        assert GroupResult("", results).get(timeout=TIMEOUT) == [1] * 300
    assert max(size for size, _ in backend.batches) > 1
    assert len(backend.batches) < 300


def test_a_worker_whose_store_goes_away_runs_each_task_once_and_stores_every_result(tmp_path: Path) -> None:
    events = Events()
    broker, backend = RecordingBroker(events), RecordingBackend(events)
    app = App(memory_config(tmp_path), broker=broker, backend=backend)
    runs: Counter[int] = Counter()
    gate = threading.Event()

    @app.task
    def count(i: int) -> int:
        gate.wait(TIMEOUT)
        runs[i] += 1
        return i

    results = app.send_tasks([count.s(i) for i in range(100)])
    with running(app, concurrency=4):
        backend.down = 8  # from now on (the worker has started): about 2 s of back-off
        gate.set()
        assert GroupResult("", results).get(timeout=TIMEOUT) == list(range(100))
        assert eventually(lambda: app.broker.depth(app.config.default_queue).in_flight == 0, timeout=TIMEOUT)
    assert runs == Counter(range(100))
    assert broker.nacked == []


def test_group_get_of_ten_thousand_reads_in_batches() -> None:
    events = Events()
    backend = RecordingBackend(events)
    uuids = [f"task-{i}" for i in range(10_000)]
    backend.set_many([TaskResult(u, TaskState.SUCCESS, result=i) for i, u in enumerate(uuids)])
    backend.reads.clear()
    group = GroupResult("g", [AsyncResult(u, backend) for u in uuids])
    assert group.get(timeout=TIMEOUT) == list(range(10_000))
    assert backend.reads["get"] == 0
    assert backend.reads["get_many"] == -(-10_000 // READ_CHUNK)


def test_send_tasks_handles_read_their_results_together(tmp_path: Path) -> None:
    events = Events()
    backend = RecordingBackend(events)
    app = App(memory_config(tmp_path), backend=backend)
    handles = app.send_tasks([Signature("add", [i, i]) for i in range(2500)])
    backend.set_many([TaskResult(h.task_uuid, TaskState.SUCCESS, result=2 * i) for i, h in enumerate(handles)
                      if i != 1700])
    backend.reads.clear()
    assert [h.get(timeout=TIMEOUT) for h in handles[:1700]] == [2 * i for i in range(1700)]
    assert backend.reads["get"] == 0 and backend.reads["get_many"] == 2  # 1,000 at a time
    late = threading.Timer(0.2, lambda: backend.set(TaskResult(handles[1700].task_uuid, TaskState.SUCCESS, result=0)))
    late.start()
    assert handles[1700].get(timeout=TIMEOUT) == 0  # not read as final before: waited for
    assert [h.get(timeout=TIMEOUT) for h in handles[1701:]] == [2 * i for i in range(1701, 2500)]
    assert backend.reads["get_many"] <= 5


def test_a_redelivered_task_whose_follow_ups_were_sent_is_acked_without_running(tmp_path: Path) -> None:
    events = Events()
    broker, backend = RecordingBroker(events), RecordingBackend(events)
    app = App(memory_config(tmp_path), broker=broker, backend=backend)
    runs: list[int] = []

    @app.task
    def step(i: int) -> int:
        runs.append(i)
        return i

    sig = step.s(1).signature.replace(on_success=[step.s(2).signature])
    executor = Executor(app.config, app.registry, broker, backend)
    app.send_task(sig)
    [delivery] = broker.fetch([app.config.default_queue], 1, 5.0)
    done = executor.process(delivery)
    assert done is not None and done.follow_ups
    settler_for(broker, backend).settle_now([done])
    assert backend.follow_ups_sent(sig.uuid)
    again = Delivery(delivery.queue, delivery.body, delivery.tag, delivery_count=2)
    repeat = executor.process(again)
    assert repeat is not None and not repeat.records and not repeat.follow_ups
    assert runs == [1]


class Answerable:
    """A publish the test answers for: ``when_settled``'s callback is kept; ``wait`` raises when refused."""

    def __init__(self) -> None:
        self.then: list[object] = []
        self.waited = 0
        self.refused = False

    def wait(self) -> None:
        self.waited += 1
        if self.refused:
            raise BrokerError("RabbitMQ refused a message (nack)")

    def when_settled(self, then: object) -> None:
        self.then.append(then)

    def answer(self, accepted: bool) -> None:
        self.refused = not accepted
        [then] = self.then
        then(accepted)  # type: ignore[operator]


class AnsweringBroker(RecordingBroker):
    """Publishes whose acceptance the test decides, by ``Answerable``."""

    def __init__(self, events: Events) -> None:
        super().__init__(events)
        self.answerable: list[Answerable] = []
        self.acked_on: list[str] = []

    def publish_begin(self, messages: Sequence[OutgoingMessage]) -> PendingPublish:
        super().publish_begin(messages)
        self.answerable.append(Answerable())
        return self.answerable[-1]

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        self.acked_on.append(threading.current_thread().name)
        super().ack_many(deliveries)


def test_without_a_store_the_ack_follows_the_brokers_acceptance_on_the_answering_thread() -> None:
    events = Events()
    broker = AnsweringBroker(events)
    released: list[str] = []
    settler = Settler(broker, None, release=lambda ds: released.extend(d.body.decode() for d in ds),
                      on_pause=lambda _p: None, stopping=threading.Event())
    settler.start()
    settler.add(outcome(broker, "t"), alone=True)
    assert [kind for kind, _ in events.log] == ["publish"]  # not acked before the broker answers
    [pending] = broker.answerable
    pending.answer(True)
    assert broker.acked_on == [threading.current_thread().name] and released == ["t"]
    assert pending.waited == 0  # no settler thread waited for it
    settler.finish()
    assert broker.nacked == []


def test_without_a_store_follow_ups_refused_give_the_delivery_back() -> None:
    events = Events()
    broker = AnsweringBroker(events)
    settler = settler_for(broker, None)
    settler.start()
    settler.add(outcome(broker, "t"), alone=True)
    broker.answerable[0].answer(False)
    assert eventually(lambda: len(broker.nacked) == 1)
    settler.finish()
    assert [kind for kind, _ in events.log] == ["publish"]  # never acked
    assert broker.answerable[0].waited == 1  # the settler's wait learnt the refusal


def test_a_finishing_settler_waits_for_the_brokers_answers_within_its_grace(caplog: pytest.LogCaptureFixture) -> None:
    events = Events()
    broker = AnsweringBroker(events)
    settler = settler_for(broker, None, stop_grace=30.0)
    settler.start()
    settler.add(outcome(broker, "t"), alone=True)
    finisher = threading.Thread(target=settler.finish)
    finisher.start()
    finisher.join(0.3)
    assert finisher.is_alive()  # still waiting for the answer
    broker.answerable[0].answer(True)
    finisher.join(TIMEOUT)
    assert not finisher.is_alive()
    assert [kind for kind, _ in events.log] == ["publish", "ack"]

    quick = settler_for(broker, None, stop_grace=0.2)
    quick.start()
    quick.add(outcome(broker, "u"), alone=True)
    quick.finish()  # no answer ever: gives up after its grace
    assert "stopping before the broker accepted the follow-ups of 1 deliveries" in caplog.text
