"""Go Machinery's ``IgnoreWhenTaskNotRegistered`` survives what a Python worker sends again from a
message that set it: a retry (in Go's format the Go program reads, and in this project's), its
callbacks and chord callback, a message given back (``nack``) or delayed; and a worker that lacks
the task drops the message it comes back as, instead of offering it again."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from machinery import App, Config, Signature
from machinery._speedups import _codec_py, decode
from machinery.backends.memory import MemoryBackend
from machinery.brokers.base import Delivery
from machinery.brokers.sqlite import SQLiteBroker
from machinery.execution import Executor
from machinery.registry import Registry
from machinery.routing import Router
from machinery.settling import Settler
from machinery.states import TaskState
from machinery.unregistered import ignored_by_sender, ignoring_uuids, with_ignore_flags
from tests.interop.capture import Capture as BaseCapture
from tests.support.amqp import amqp_config
from tests.support.gointerop import GoProgram
from tests.support.names import unique_name
from tests.support.waiting import TIMEOUT
from tests.support.workers import running

GO = Config(broker_url="memory://go-ignore", result_backend="memory://go-ignore", wire_format="go",
            default_queue="machinery_tasks", binding_key="machinery_task")
DEFAULT = GO.replace(wire_format="machinery")
QUEUE = "machinery_tasks"


class Capture(BaseCapture):
    """An in-memory broker that keeps every message published, acked and given back."""

    def __init__(self) -> None:
        super().__init__()
        self.acked: list[Delivery] = []
        self.nacked: list[Delivery] = []

    def ack(self, delivery: Delivery) -> None:
        self.acked.append(delivery)

    def nack(self, delivery: Delivery, *, delay: float = 0.0) -> None:
        self.nacked.append(delivery)


def _flaky(*args: object) -> None:
    raise RuntimeError("not yet")


def _registry() -> Registry:
    registry = Registry()
    registry.register("flaky", _flaky)
    registry.register("ok", lambda: 1)
    return registry


def _go_message(go: GoProgram, uuid: str, name: str, **fields: Any) -> bytes:
    """Go's message for ``name``, flagged, with a flagged and an unflagged success callback, a
    flagged error callback and a flagged chord callback."""
    [body] = go.encode([{
        "UUID": uuid, "Name": name, "IgnoreWhenTaskNotRegistered": True, "RoutingKey": "machinery_task",
        "OnSuccess": [{"UUID": f"{uuid}-s1", "Name": "cb", "IgnoreWhenTaskNotRegistered": True},
                      {"UUID": f"{uuid}-s2", "Name": "cb"}],
        "OnError": [{"UUID": f"{uuid}-e1", "Name": "report", "IgnoreWhenTaskNotRegistered": True}],
        **fields,
    }])
    return body


def _process(config: Config, body: bytes, registry: Registry | None = None) -> Capture:
    broker, backend = Capture(), MemoryBackend()
    outcome = Executor(config, registry or _registry(), broker, backend).process(Delivery(QUEUE, body, tag=1))
    if outcome is not None:
        Settler(broker, backend, release=lambda _d: None, on_pause=lambda _p: None,
                stopping=threading.Event()).settle_now([outcome])
    return broker


def _flags(decoded: dict[str, Any]) -> dict[str, bool]:
    assert decoded["ok"], decoded
    return {t["Path"]: t["IgnoreWhenTaskNotRegistered"] for t in decoded["tasks"]}


def test_reading_the_flags_of_a_message_and_its_callbacks(go: GoProgram) -> None:
    body = _go_message(go, "task_r", "flaky")
    assert ignoring_uuids(body) == {"task_r", "task_r-s1", "task_r-e1"}
    assert ignored_by_sender(body)
    assert ignoring_uuids(b'{"UUID":"a","Name":"x"}') == frozenset()
    assert ignoring_uuids(b"not json IgnoreWhenTaskNotRegistered") == frozenset()
    plain = Router(DEFAULT).message(Signature("x", [1], uuid="task_p")).body
    assert with_ignore_flags(plain, {"elsewhere"}) == plain


def test_a_go_mode_retry_keeps_the_flag_on_the_task_and_on_each_callback_that_had_it(go: GoProgram) -> None:
    body = _go_message(go, "task_g", "flaky", RetryCount=2)
    [retry] = _process(GO, body).published
    [decoded] = go.decode([retry.body])
    assert decoded["tasks"][0]["RetryCount"] == 1
    assert _flags(decoded) == {"message": True, "message.OnSuccess[0]": True, "message.OnSuccess[1]": False,
                               "message.OnError[0]": True}


def test_a_default_mode_retry_keeps_the_flag_and_reads_as_the_same_signature() -> None:
    sig = Signature("flaky", [1, "two", b"\x03"], uuid="task_d", retry_count=1,
                    on_success=[Signature("cb", [2.5], uuid="task_d-s1"), Signature("cb", uuid="task_d-s2")],
                    chord_callback=Signature("sum", uuid="task_d-c"))
    body = with_ignore_flags(Router(DEFAULT).message(sig).body, {"task_d", "task_d-s1", "task_d-c"})
    assert ignoring_uuids(body) == {"task_d", "task_d-s1", "task_d-c"}
    [retry] = _process(DEFAULT, body).published
    assert ignored_by_sender(retry.body)
    assert ignoring_uuids(retry.body) == {"task_d", "task_d-s1", "task_d-c"}
    for read in (decode, _codec_py.decode):
        again = read(retry.body)
        assert again == decode(Router(DEFAULT).message(again).body)  # the flag changes nothing else
        assert (again.args, again.retry_count, again.on_success[0].args) == ((1, "two", b"\x03"), 0, (2.5,))


def test_callbacks_and_chord_callbacks_sent_here_keep_their_flags(go: GoProgram) -> None:
    body = _go_message(go, "task_c", "ok")
    first, second = _process(GO, body).published
    assert [_flags(d)["message"] for d in go.decode([first.body, second.body])] == [True, False]
    failed = _process(GO, _go_message(go, "task_f", "flaky")).published
    assert [_flags(d)["message"] for d in go.decode([m.body for m in failed])] == [True]
    backend, broker = MemoryBackend(), Capture()
    [member] = go.encode([{"UUID": "task_m", "Name": "ok", "GroupUUID": "group_m", "GroupTaskCount": 1,
                           "ChordCallback": {"UUID": "task_m-c", "Name": "sum", "IgnoreWhenTaskNotRegistered": True}}])
    backend.group_start("group_m", ["task_m"])
    outcome = Executor(GO, _registry(), broker, backend).process(Delivery(QUEUE, member, tag=1))
    assert outcome is not None
    [chord_callback] = outcome.follow_ups
    assert _flags(go.decode([chord_callback.body])[0]) == {"message": True}


@pytest.mark.parametrize("config", [GO, DEFAULT], ids=["go", "default"])
def test_a_retry_that_comes_back_to_a_worker_lacking_the_task_is_dropped(go: GoProgram, config: Config) -> None:
    body = _go_message(go, f"task_{config.wire_format}", "flaky", RetryCount=1)
    [retry] = _process(config, body).published
    lacking = Registry()
    lacking.register("other", lambda: None)
    broker = _process(config, retry.body, lacking)
    assert len(broker.acked) == 1 and broker.nacked == [] and broker.published == []
    # Without the flag, the same worker offers it again instead.
    unflagged = body.replace(b'"IgnoreWhenTaskNotRegistered":true', b'"IgnoreWhenTaskNotRegistered":false')
    [retry] = _process(config, unflagged).published
    broker = _process(config, retry.body, lacking)
    assert broker.acked == [] and len(broker.nacked) == 1


def test_a_message_given_back_keeps_its_bytes_on_sqlite(go: GoProgram, tmp_path: Path) -> None:
    body = _go_message(go, "task_n", "flaky")
    broker = SQLiteBroker(str(tmp_path / "b.sqlite3"))
    try:
        broker.declare([QUEUE])
        broker.publish(QUEUE, body)
        [first] = broker.fetch([QUEUE], 1, TIMEOUT)
        broker.nack(first, delay=0.05)
        [second] = broker.fetch([QUEUE], 1, TIMEOUT)
        assert second.body == body and ignored_by_sender(second.body)
        broker.ack(second)
    finally:
        broker.close()


def test_on_rabbitmq_a_go_task_retried_here_keeps_the_flag_through_go_s_delay_queue(
    go: GoProgram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Python worker retries a flagged Go task (Go's delay queue, 1 s); a worker that lacks the
    task gets it back and drops it, as a Go worker would, instead of offering it again."""
    config = amqp_config(tmp_path).replace(wire_format="go", binding_key=f"key-{unique_name()}")
    uuid = f"task_{unique_name()}"
    body = _go_message(go, uuid, "flaky", RetryCount=1, RoutingKey=config.binding_key)
    caplog.set_level(logging.DEBUG, logger="machinery.worker")
    with App(config) as app:
        app.register_task("flaky", _flaky)
        app.broker.declare([config.default_queue])
        app.broker.publish(config.default_queue, body)
        with running(app):
            deadline = time.monotonic() + TIMEOUT
            while app.result(uuid).state is not TaskState.RETRY and time.monotonic() < deadline:
                time.sleep(0.01)
        assert app.result(uuid).state is TaskState.RETRY
    with App(config) as lacking:
        lacking.register_task("other", lambda: None)
        with running(lacking):
            deadline = time.monotonic() + TIMEOUT
            while not any("dropped as it asks" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
                time.sleep(0.02)
        assert not any("offered again" in r.getMessage() for r in caplog.records)
        assert lacking.result(uuid).state is TaskState.RETRY
        depth = lacking.broker.depth(config.default_queue)
        assert (depth.ready, depth.in_flight) == (0, 0)
