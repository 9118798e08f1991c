"""Go mode's messages, checked by Go itself: every message this project publishes under
``wire_format: go`` (sent tasks, callbacks, chord callbacks, retries, delayed and error callbacks)
decodes in the Go program with every argument converted to the right Go type, and messages that
Go's ``json.Marshal`` writes decode here to the right Python values."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from machinery import App, Config, Signature
from machinery._speedups import _codec_py, decode
from machinery.backends.memory import MemoryBackend
from machinery.brokers.base import Delivery
from machinery.errors import EncodeError
from machinery.execution import Executor
from machinery.gowire import fibonacci_next
from machinery.jsonvalues import JSONValue
from machinery.registry import Registry
from machinery.routing import Router
from machinery.settling import Settler
from machinery.states import TaskState
from machinery.workflows import chain, chord, group
from tests.interop.capture import Capture
from tests.support.gointerop import GoProgram

GO = Config(broker_url="memory://go-wire", result_backend="memory://go-wire", wire_format="go",
            default_queue="machinery_tasks", binding_key="machinery_task")

# (Python value, the Go Type it is sent as, the Go type it becomes, its JSON value read back from Go)
ARGS: list[tuple[JSONValue, str, str, object]] = [
    (True, "bool", "bool", True),
    (-5, "int64", "int64", -5),
    (2**63 - 1, "int64", "int64", 2**63 - 1),
    (2**64 - 1, "uint64", "uint64", 2**64 - 1),
    (2.5, "float64", "float64", 2.5),
    (3.0, "float64", "float64", 3),
    ("héllo \u2028 \"q\"", "string", "string", "héllo \u2028 \"q\""),
    (b"\x00\xffbytes", "[]byte", "[]uint8", "AP9ieXRlcw=="),
    (b"", "[]byte", "[]uint8", ""),
    ((1, -2), "[]int64", "[]int64", [1, -2]),
    ((1, 2.5), "[]float64", "[]float64", [1, 2.5]),
    (("a", "b"), "[]string", "[]string", ["a", "b"]),
    ((True, False), "[]bool", "[]bool", [True, False]),
    ((), "[]string", "[]string", []),
]


def _args(task: dict[str, Any]) -> list[tuple[str, str, object]]:
    return [(a["Type"], a["GoType"], a["Value"]) for a in task["Args"]]


def test_every_argument_type_decodes_in_go_as_its_go_type(go: GoProgram) -> None:
    sig = Signature("add", [value for value, *_ in ARGS])
    message = Router(GO).message(sig)
    [decoded] = go.decode([message.body])
    assert decoded["ok"], decoded
    assert _args(decoded["tasks"][0]) == [(t, g, v) for _, t, g, v in ARGS]


def test_go_writes_messages_this_project_reads_with_the_same_values(go: GoProgram) -> None:
    typed = [{"Name": "", "Type": t, "Value": v} for _, t, _, v in ARGS]
    [body] = go.encode([{"UUID": "task_1", "Name": "add", "RoutingKey": "machinery_task", "Args": typed}])
    for read in (decode, _codec_py.decode):
        sig = read(body)
        assert sig.args == tuple(value for value, *_ in ARGS)
        assert [type(a) for a in sig.args] == [type(value) for value, *_ in ARGS]


def test_routing_key_is_the_binding_key_for_the_default_queue_and_the_queue_name_otherwise(go: GoProgram) -> None:
    router = Router(GO)
    default, other = router.message(Signature("a")), router.message(Signature("a", routing_key="reports"))
    assert (default.queue, other.queue) == ("machinery_tasks", "reports")
    tasks = [d["tasks"][0] for d in go.decode([default.body, other.body])]
    assert [t["RoutingKey"] for t in tasks] == ["machinery_task", "reports"]
    # The binding key in a routing key (what Go writes) names the default queue, in every mode.
    assert Router(GO.replace(wire_format="machinery")).queue_for(Signature("a", routing_key="machinery_task")) == (
        "machinery_tasks"
    )


def test_an_eta_and_nested_callbacks_reach_go(go: GoProgram) -> None:
    eta = datetime(2030, 1, 2, 3, 4, 5, 123456, timezone.utc)
    sig = Signature("a", [1], eta=eta, on_success=[Signature("b", ["x"], immutable=True)],
                    on_error=[Signature("c", [b"\x01"])])
    [decoded] = go.decode([Router(GO).message(sig).body])
    paths = {t["Path"]: t for t in decoded["tasks"]}
    assert paths["message"]["ETA"] == "2030-01-02T03:04:05.123456Z"
    assert _args(paths["message.OnSuccess[0]"]) == [("string", "string", "x")]
    assert paths["message.OnSuccess[0]"]["Immutable"] is True
    assert _args(paths["message.OnError[0]"]) == [("[]byte", "[]uint8", "AQ==")]


@pytest.mark.parametrize("value", [None, {"k": 1}, ((1,),), (1, "a"), (True, 1), (-1, 2**64 - 1), 2**64, ((b"x",),)])
def test_a_value_go_has_no_type_for_is_an_encode_error_naming_its_position(value: object) -> None:
    with pytest.raises(EncodeError, match=r"Args\[1\]"):
        Router(GO).message(Signature("a", [1, value]))  # type: ignore[list-item]


def _process(sig: Signature, registry: Registry, broker: Capture, backend: MemoryBackend,
             queue: str = "machinery_tasks") -> None:
    """Run ``sig`` as a worker does and settle its outcome (result stored, follow-ups published)."""
    outcome = Executor(GO, registry, broker, backend).process(Delivery(queue, Router(GO).message(sig).body, tag=1))
    assert outcome is not None
    settler = Settler(broker, backend, release=lambda _d: None, on_pause=lambda _p: None, stopping=threading.Event())
    settler.settle_now([outcome])


def _registry(**tasks: Any) -> Registry:
    registry = Registry()
    for name, fn in tasks.items():
        registry.register(name, fn)
    return registry


def test_success_callbacks_get_the_result_appended_as_go_does(go: GoProgram) -> None:
    broker, backend = Capture(), MemoryBackend()
    registry = _registry(add=lambda *a: sum(a))
    sig = Signature("add", [1, 2], on_success=[Signature("mul", [10]), Signature("log", [])])
    _process(sig, registry, broker, backend)
    decoded = go.decode([m.body for m in broker.published])
    assert [_args(d["tasks"][0]) for d in decoded] == [
        [("int64", "int64", 10), ("int64", "int64", 3)],
        [("int64", "int64", 3)],
    ]


def test_chord_callback_gets_the_members_results_appended_in_group_order(go: GoProgram) -> None:
    broker, backend = Capture(), MemoryBackend()
    registry = _registry(echo=lambda x: x)
    work = chord([Signature("echo", [2.5]), Signature("echo", [7])], Signature("sum", ["first"]))
    backend.group_start(work.group.group_uuid, [s.uuid for s in work.group.tasks])
    for member in reversed(work.group.tasks):
        _process(member, registry, broker, backend)
    [decoded] = go.decode([broker.published[-1].body])
    assert _args(decoded["tasks"][0]) == [("string", "string", "first"), ("float64", "float64", 2.5),
                                          ("int64", "int64", 7)]


def test_a_retry_goes_back_to_its_queue_with_go_s_fibonacci_timeout_and_an_eta(go: GoProgram) -> None:
    broker, backend = Capture(), MemoryBackend()

    def flaky(x: bytes) -> int:  # an annotation that does not fit the arg would fail it, not retry it
        raise RuntimeError("not yet")

    registry = _registry(flaky=flaky)
    sig = Signature("flaky", [b"\x02"], routing_key="machinery_task", retry_count=3, retry_timeout=2)
    before = datetime.now(timezone.utc)
    _process(sig, registry, broker, backend, queue="from-here")
    [retry] = broker.published
    assert retry.queue == "from-here"
    assert retry.delay == pytest.approx(3.0, abs=0.5)
    [decoded] = go.decode([retry.body])
    task = decoded["tasks"][0]
    assert (task["RetryCount"], task["RoutingKey"]) == (2, "from-here")
    assert _args(task) == [("[]byte", "[]uint8", "Ag==")]
    eta = datetime.fromisoformat(task["ETA"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=3) <= eta <= datetime.now(timezone.utc) + timedelta(seconds=3)
    assert decode(retry.body).retry_timeout == fibonacci_next(2) == 3


def test_error_callbacks_get_the_error_text_first(go: GoProgram) -> None:
    broker, backend = Capture(), MemoryBackend()

    def boom() -> None:
        raise ValueError("boom")

    _process(Signature("boom", on_error=[Signature("report", [1])]), _registry(boom=boom), broker, backend)
    [decoded] = go.decode([m.body for m in broker.published])
    assert _args(decoded["tasks"][0]) == [("string", "string", "boom"), ("int64", "int64", 1)]


def test_a_result_go_cannot_read_fails_the_task_with_a_clear_error() -> None:
    broker, backend = Capture(), MemoryBackend()
    sig = Signature("obj", on_success=[Signature("next")])
    _process(sig, _registry(obj=lambda: {"a": 1}), broker, backend)
    stored = backend.get(sig.uuid)
    assert stored is not None and stored.state is TaskState.FAILURE
    assert "Go cannot read" in stored.error and "object" in stored.error
    assert broker.published == []


def test_a_none_result_adds_no_argument_as_a_go_task_returning_only_an_error(go: GoProgram) -> None:
    broker, backend = Capture(), MemoryBackend()
    _process(Signature("noop", on_success=[Signature("next", ["only"])]), _registry(noop=lambda: None),
             broker, backend)
    [decoded] = go.decode([m.body for m in broker.published])
    assert _args(decoded["tasks"][0]) == [("string", "string", "only")]


def test_everything_an_app_sends_in_go_mode_decodes_in_go(go: GoProgram) -> None:
    broker, backend = Capture(), MemoryBackend()
    with App(GO, broker=broker, backend=backend) as app:
        app.send_task(chain(Signature("add", [1, 2]), Signature("mul", [3.5]), Signature("log", [b"\x00"])))
        app.send_task(group(Signature("add", [True]), Signature("add", [(1, 2)])))
        app.send_task(chord([Signature("add", ["x"]), Signature("add", [2**64 - 1])], Signature("sum", [])))
        app.send_task(Signature("later", [1]).countdown(30))
        app.send_tasks([Signature("batch", [i]) for i in range(3)])
    decoded = go.decode([m.body for m in broker.published])
    assert all(d["ok"] for d in decoded), decoded
    assert [d["tasks"][0]["Name"] for d in decoded] == ["add", "add", "add", "add", "add", "later",
                                                         "batch", "batch", "batch"]
    assert decoded[0]["tasks"][2]["Args"] == [{"Type": "[]byte", "GoType": "[]uint8", "Value": "AA=="}]
    assert decoded[3]["tasks"][1]["Name"] == "sum"  # the chord callback travels with each member
    assert decoded[5]["tasks"][0]["ETA"] is not None
