"""Named arguments in Go mode: every typed argument this project sends carries the name of the
task's parameter at its position when the sending app has the task registered (``""`` when it does
not), on every path (sent tasks, callbacks with the result appended, error callbacks, chord
callbacks, retries); and names Go writes are read and ignored, arguments binding by position, by
the compiled codec and the pure twin alike. The default format is unchanged."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from machinery import App, Config, Signature
from machinery._speedups import _codec_py, decode, encode
from machinery.backends.memory import MemoryBackend
from machinery.brokers.base import Delivery
from machinery.execution import Executor
from machinery.jsonvalues import JSONValue
from machinery.registry import Registry
from machinery.routing import Router
from machinery.settling import Settler
from machinery.task import positional_names
from machinery.workflows import chain, chord
from tests.interop.capture import Capture
from tests.support.gointerop import GoProgram

GO = Config(broker_url="memory://go-names", result_backend="memory://go-names", wire_format="go",
            default_queue="machinery_tasks", binding_key="machinery_task")


def add(a: int, b: int) -> int:
    return a + b


def mul(x: float, y: float) -> float:
    return x * y


def report(error: str, where: str) -> str:
    return f"{where}: {error}"


def total(label: str, *values: int) -> str:
    return f"{label}={sum(values)}"


def boom(n: int) -> None:
    raise ValueError(f"boom {n}")


class ClassTask:
    def run(self, args: tuple[JSONValue, ...]) -> int:
        return len(args)


def _registry() -> Registry:
    registry = Registry()
    for name, fn in (("add", add), ("mul", mul), ("report", report), ("total", total), ("boom", boom)):
        registry.register(name, fn)
    registry.register("counted", ClassTask())
    return registry


def _names(decoded: dict[str, Any]) -> dict[str, list[str]]:
    """Path of each signature in a decoded message -> its args' names (Go leaves empty ones out)."""
    assert decoded["ok"], decoded
    return {t["Path"]: [a.get("Name", "") for a in t["Args"]] for t in decoded["tasks"]}


def test_positional_parameter_names_of_a_function_task() -> None:
    registry = _registry()

    def keyword_only(a: int, /, b: int, *, c: int = 0) -> int:
        return a + b + c

    registry.register("kw", keyword_only)
    registry.register("method", ClassTask().run)
    assert registry.arg_names("add") == ("a", "b")
    assert registry.arg_names("total") == ("label",)  # no name for what *values takes
    assert registry.arg_names("kw") == ("a", "b")
    assert registry.arg_names("method") == ("args",)  # a bound method: self is not a parameter
    assert registry.arg_names("counted") == ()  # a Task object's run(args) names none
    assert registry.arg_names("elsewhere") == ()
    assert positional_names(registry.get("mul")) == ("x", "y")


def test_re_registering_a_task_renames_its_arguments() -> None:
    registry = _registry()
    assert registry.arg_names("add") == ("a", "b")
    registry.register("add", lambda left, right: left + right, replace=True)
    assert registry.arg_names("add") == ("left", "right")


def test_a_task_sent_in_go_mode_names_its_arguments_as_the_function_does(go: GoProgram) -> None:
    router = Router(GO, _registry())
    sig = Signature("add", [1, 2], on_success=[Signature("mul", [3.5])],
                    on_error=[Signature("report", ["here"])])
    bodies = [router.message(s).body for s in (
        sig, Signature("total", ["sum", 1, 2, 3]), Signature("counted", [1]), Signature("elsewhere", [b"x", 1]),
        Signature("add", [1, 2, 3]),
    )]
    decoded = [_names(d) for d in go.decode(bodies)]
    assert decoded[0] == {"message": ["a", "b"], "message.OnSuccess[0]": ["x"], "message.OnError[0]": ["error"]}
    assert decoded[1] == {"message": ["label", "", "", ""]}
    assert decoded[2] == {"message": [""]}
    assert decoded[3] == {"message": ["", ""]}
    assert decoded[4] == {"message": ["a", "b", ""]}  # more args than parameters: the rest unnamed


def test_an_app_names_the_arguments_of_its_registered_tasks_and_not_of_others(go: GoProgram) -> None:
    broker = Capture()
    with App(GO, broker=broker, backend=MemoryBackend()) as app:
        @app.task
        def scale(value: float, factor: float) -> float:
            return value * factor

        app.send_task(scale.s(2.0, factor=3.0))
        app.send_task(chain(scale.s(1.0, 2.0), scale.partial(4.0)))
        app.send_task(Signature("not_here", [1]))
    decoded = [_names(d) for d in go.decode([m.body for m in broker.published])]
    assert decoded == [
        {"message": ["value", "factor"]},
        {"message": ["value", "factor"], "message.OnSuccess[0]": ["value"]},
        {"message": [""]},
    ]


def _process(sig: Signature, broker: Capture, backend: MemoryBackend) -> None:
    registry = _registry()
    outcome = Executor(GO, registry, broker, backend).process(
        Delivery("machinery_tasks", Router(GO).message(sig).body, tag=1))
    assert outcome is not None
    settler = Settler(broker, backend, release=lambda _d: None, on_pause=lambda _p: None, stopping=threading.Event())
    settler.settle_now([outcome])


def test_a_callback_sent_by_a_worker_names_its_own_args_and_the_appended_result(go: GoProgram) -> None:
    broker, backend = Capture(), MemoryBackend()
    _process(Signature("add", [1, 2], on_success=[Signature("mul", [10]), Signature("total", ["t"])]), broker, backend)
    decoded = [_names(d) for d in go.decode([m.body for m in broker.published])]
    assert decoded == [{"message": ["x", "y"]}, {"message": ["label", ""]}]


def test_an_error_callback_and_a_retry_sent_by_a_worker_name_their_args(go: GoProgram) -> None:
    broker, backend = Capture(), MemoryBackend()
    _process(Signature("boom", [4], on_error=[Signature("report", ["py"])]), broker, backend)
    _process(Signature("boom", [5], retry_count=1), broker, backend)
    decoded = [_names(d) for d in go.decode([m.body for m in broker.published])]
    assert decoded == [{"message": ["error", "where"]}, {"message": ["n"]}]


def test_a_chord_callback_sent_by_a_worker_names_its_args(go: GoProgram) -> None:
    broker, backend = Capture(), MemoryBackend()
    work = chord([Signature("add", [1, 2]), Signature("add", [3, 4])], Signature("total", ["sum"]))
    backend.group_start(work.group.group_uuid, [s.uuid for s in work.group.tasks])
    for member in work.group.tasks:
        _process(member, broker, backend)
    [decoded] = go.decode([broker.published[-1].body])
    assert _names(decoded) == {"message": ["label", "", ""]}
    assert [a["Value"] for a in decoded["tasks"][0]["Args"]] == ["sum", 3, 7]


def test_the_default_format_is_unchanged_by_a_registry() -> None:
    config = GO.replace(wire_format="machinery")
    sig = Signature("add", [1, 2], on_success=[Signature("mul", [3])])
    assert Router(config, _registry()).message(sig).body == encode(sig)


NAMED: list[dict[str, object]] = [
    {"Name": "a", "Type": "int64", "Value": 1},
    {"Name": "β-name", "Type": "string", "Value": "x"},
    {"Name": "blob", "Type": "[]byte", "Value": "AQI="},
    {"Name": "", "Type": "[]float64", "Value": [1.5]},
    {"Name": "flag", "Type": "bool", "Value": True},
]


@pytest.mark.parametrize("read", [decode, _codec_py.decode], ids=["compiled", "pure"])
def test_names_go_writes_are_read_and_ignored_binding_by_position(go: GoProgram, read: Any) -> None:
    callback = {"UUID": "task_cb", "Name": "mul", "Args": [{"Name": "factor", "Type": "float64", "Value": 2}]}
    [body] = go.encode([{"UUID": "task_1", "Name": "add", "Args": NAMED, "OnSuccess": [callback],
                         "ChordCallback": {"UUID": "task_cc", "Name": "total",
                                           "Args": [{"Name": "label", "Type": "string", "Value": "s"}]}}])
    assert b'-name","Type":"string"' in body
    sig = read(body)
    assert sig.args == (1, "x", b"\x01\x02", (1.5,), True)
    assert sig.on_success[0].args == (2.0,)
    assert sig.chord_callback is not None and sig.chord_callback.args == ("s",)
    unnamed = read(body.replace(b'"Name":"a"', b'"Name":""').replace(b'"Name":"flag"', b'"Name":""'))
    assert unnamed.args == sig.args


def test_a_named_go_task_runs_here_with_its_args_by_position_whatever_the_names(go: GoProgram) -> None:
    """Go's worker ignores names; so does this one: args named in another order still bind by position."""
    broker, backend = Capture(), MemoryBackend()
    [body] = go.encode([{"UUID": "task_named", "Name": "report",
                         "Args": [{"Name": "where", "Type": "string", "Value": "first"},
                                  {"Name": "error", "Type": "string", "Value": "second"}]}])
    outcome = Executor(GO, _registry(), broker, backend).process(Delivery("machinery_tasks", body, tag=1))
    assert outcome is not None and outcome.result == "second: first"
