"""Typed tasks end to end on a real worker (every broker): typed results, dataclass arguments and
results, conversion of arguments on the worker, the exact error for a bad argument, keyword
arguments, and plain values from get()."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest

from machinery import App, JSONInput, ResultTypeError, Signature, TaskFailed, TaskState, chain, chord, group
from tests.support.waiting import TIMEOUT
from tests.support.workers import running
from tests.typing.cases import typed_tasks as user
from tests.typing.cases.typed_tasks import Point


class Tasks:
    """Typed tasks registered on an App; ``seen`` holds what each received, by task name."""

    def __init__(self, app: App) -> None:
        seen: dict[str, Any] = {}
        self.seen = seen

        @app.task
        def add(x: float, y: float) -> float:
            seen["add"] = (x, y)
            return x + y

        @app.task
        def label(value: float, unit: str) -> str:
            return f"{value:g} {unit}"

        @app.task
        def norm(p: Point) -> float:
            seen["norm"] = p
            return float((p.x**2 + p.y**2) ** 0.5)

        @app.task
        def pick(items: list[int], mode: Literal["first", "last"] = "first") -> int:
            seen["pick"] = items
            return items[0] if mode == "first" else items[-1]

        @app.task
        def record(error: str, where: str) -> str:
            seen["record"] = (error, where)
            return where

        @app.task
        def nested() -> dict[str, list[int]]:
            return {"a": [1, 2]}

        # the same functions as the typing cases' user module, registered on this app
        multiply, total = app.task(user.multiply.__wrapped__), app.task(user.total.__wrapped__)
        midpoint = app.task(user.midpoint.__wrapped__)
        self.add, self.multiply, self.label, self.total, self.record = add, multiply, label, total, record
        self.norm, self.midpoint, self.pick, self.nested = norm, midpoint, pick, nested


def test_typed_delay_gives_the_typed_result(app: App) -> None:
    tasks = Tasks(app)
    with running(app):
        value = tasks.add.delay(1, 2).get(timeout=TIMEOUT)
    assert value == 3.0
    assert tasks.seen["add"] == (1.0, 2.0)
    assert [type(v) for v in tasks.seen["add"]] == [float, float]


def test_dataclasses_travel_as_json_objects_and_come_back_as_dataclasses(app: App) -> None:
    tasks = Tasks(app)
    seen, norm, midpoint = tasks.seen, tasks.norm, tasks.midpoint
    with running(app):
        assert norm.delay(Point(3, 4)).get(timeout=TIMEOUT) == 5.0
        middle = midpoint.delay(Point(0, 0), Point(2, 4)).get(timeout=TIMEOUT)
        assert seen["norm"] == Point(3.0, 4.0)
        assert middle == Point(1.0, 2.0)
        assert type(middle) is Point
        sig = midpoint.s(Point(0, 0), Point(2, 4))
        assert sig.signature.args[0] == {"x": 0, "y": 0}  # a JSON object on the wire
        piped = app.send_task(midpoint.s(Point(0, 0), Point(6, 8)) | norm.partial()).get(timeout=TIMEOUT)
        assert piped == 5.0


def test_typed_chain_group_and_chord(app: App) -> None:
    tasks = Tasks(app)
    add, multiply, label, total = tasks.add, tasks.multiply, tasks.label, tasks.total
    with running(app):
        c = chain(add.s(1, 1), add.partial(5), multiply.partial(4), label.partial("kg"))
        assert app.send_task(c).get(timeout=TIMEOUT) == "28 kg"
        assert app.send_task(add.si(1, 1) | add.s(5, 6) | multiply.partial(4)).get(timeout=TIMEOUT) == 44.0
        assert app.send_task(group(add.s(1, 1), add.s(2, 2))).get(timeout=TIMEOUT) == [2.0, 4.0]
        assert app.send_task(chord([add.s(1, 1), add.s(2, 2)], total.partial(10))).get(timeout=TIMEOUT) == 16.0


def test_a_bad_argument_fails_with_the_parameter_and_the_type_and_runs_error_callbacks(app: App) -> None:
    tasks = Tasks(app)
    seen, record = tasks.seen, tasks.record
    with running(app):
        bad = Signature("add", [1, "abc"], retry_count=3, on_error=[record.partial("on_error").signature])
        result = app.send_task(bad)
        with pytest.raises(TaskFailed) as failed:
            result.get(timeout=TIMEOUT)
        expected = "add: argument 'y' expects float, got str 'abc' (Expected `float`, got `str`)"
        assert failed.value.error == expected
        assert result.state is TaskState.FAILURE  # not RETRY: a bad argument is never retried
        callback = app.result(bad.on_error[0].uuid)
        assert callback.get(timeout=TIMEOUT) == "on_error"
        assert seen["record"] == (expected, "on_error")
        assert "add" not in seen  # the function never ran
        # the worker is still there
        assert app.send_task(Signature("add", [1, 2])).get(timeout=TIMEOUT) == 3.0


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([1], "add(x: float, y: float) -> float: missing a required argument: 'y'"),
        ([True, 1], "add: argument 'x' expects float, got bool True (Expected `float`, got `bool`)"),
        ([None, 1], "add: argument 'x' expects float, got NoneType None (Expected `float`, got `null`)"),
    ],
)
def test_wrong_arguments_are_failures_naming_what_was_expected(app: App, args: list[JSONInput], error: str) -> None:
    Tasks(app)
    with running(app), pytest.raises(TaskFailed) as failed:
        app.send_task(Signature("add", args)).get(timeout=TIMEOUT)
    assert failed.value.error == error


def test_containers_and_literals_are_converted_and_checked(app: App) -> None:
    seen = Tasks(app).seen
    with running(app):
        assert app.send_task(Signature("pick", [[3, 4, 5], "last"])).get(timeout=TIMEOUT) == 5
        assert seen["pick"] == [3, 4, 5]
        assert type(seen["pick"]) is list  # the frozen tuple became the annotated list
        with pytest.raises(TaskFailed) as failed:
            app.send_task(Signature("pick", [[3], "middle"])).get(timeout=TIMEOUT)
    assert failed.value.error.startswith("pick: argument 'mode' expects Literal['first', 'last'], got str 'middle'")


def test_keyword_arguments_are_sent_as_positions(app: App) -> None:
    tasks = Tasks(app)
    seen, add, multiply = tasks.seen, tasks.add, tasks.multiply
    with running(app):
        assert add.delay(y=2, x=1).get(timeout=TIMEOUT) == 3.0
        assert seen["add"] == (1.0, 2.0)
        sig = add.s(1, y=5)
        assert sig.signature.args == (1, 5)
        assert app.send_task(add.s(1, 1) | multiply.partial(y=4)).get(timeout=TIMEOUT) == 8.0


def test_results_are_plain_json(app: App) -> None:
    tasks = Tasks(app)
    with running(app):
        typed = tasks.nested.delay().get(timeout=TIMEOUT)
        untyped = app.send_task(Signature("nested")).get(timeout=TIMEOUT)
        grouped = app.send_task(group(Signature("nested"), Signature("nested"))).get(timeout=TIMEOUT)
    assert typed == untyped == {"a": [1, 2]}
    assert isinstance(untyped, dict)
    assert type(untyped) is dict
    assert type(untyped["a"]) is list
    assert json.dumps(untyped) == '{"a": [1, 2]}'
    assert json.dumps(grouped) == '[{"a": [1, 2]}, {"a": [1, 2]}]'


def test_signature_options_reach_the_message(app: App) -> None:
    add = Tasks(app).add
    with_options = add.signature(retry_count=3, priority=7, routing_key="elsewhere")
    sig = with_options.s(1, 2).signature
    assert (sig.retry_count, sig.priority, sig.routing_key, sig.immutable) == (3, 7, "elsewhere", False)
    assert with_options.si(1, 2).signature.immutable is True
    assert add.s(1, 2).set(retry_timeout=9).signature.retry_timeout == 9
    with pytest.raises(TypeError, match=r"add.signature\(\) takes options only"):
        add.signature(1, 2)  # type: ignore[arg-type]


def test_a_result_that_does_not_fit_the_declared_type_is_a_result_type_error(app: App) -> None:
    @app.task
    def liar() -> int:
        return "not an int"  # type: ignore[return-value]

    with running(app):
        result = liar.delay()
        with pytest.raises(ResultTypeError, match=r"result is not int \(Expected `int`, got `str`\)"):
            result.get(timeout=TIMEOUT)
    assert result.state is TaskState.SUCCESS  # the task ran; only reading it as an int fails


def test_group_members_come_back_as_their_declared_types(app: App) -> None:
    tasks = Tasks(app)
    with running(app):
        middle = tasks.midpoint
        points = app.send_task(group(middle.s(Point(0, 0), Point(2, 2)), middle.s(Point(0, 0), Point(4, 4))))
        assert points.get(timeout=TIMEOUT) == [Point(1, 1), Point(2, 2)]


def test_partial_needs_a_parameter_to_receive_the_result(app: App) -> None:
    tasks = Tasks(app)
    with pytest.raises(TypeError, match="nested has no positional parameter to receive a previous result"):
        tasks.nested.partial()  # type: ignore[misc]


def test_go_typed_args_reach_a_typed_task_converted(app: App) -> None:
    """A Go Machinery v1 producer's message (typed args, with or without names) runs a typed task."""
    tasks = Tasks(app)
    body = json.dumps({
        "UUID": "task_go-typed-1", "Name": "add", "RoutingKey": "", "ETA": None, "GroupUUID": "",
        "GroupTaskCount": 0, "Args": [{"Name": "x", "Type": "int64", "Value": 3},
                                      {"Name": "", "Type": "float64", "Value": 0.5}],
        "Headers": {}, "Priority": 0, "Immutable": False, "RetryCount": 0, "RetryTimeout": 0,
        "OnSuccess": None, "OnError": None, "ChordCallback": None,
    }).encode()
    queue = app.config.default_queue
    app.broker.declare([queue])
    with running(app):
        app.broker.publish(queue, body)
        assert app.result("task_go-typed-1").get(timeout=TIMEOUT) == 3.5
    assert tasks.seen["add"] == (3.0, 0.5)


def test_typed_dicts_enums_and_literals_travel_as_json(app: App) -> None:
    record, paint = app.task(user.record.__wrapped__), app.task(user.paint.__wrapped__)
    with running(app):
        reading = record.delay({"sensor": "t1", "value": 20}).get(timeout=TIMEOUT)
        assert reading == {"sensor": "t1", "value": 20.0}
        assert type(reading["value"]) is float  # converted to the TypedDict's float on the way in and out
        assert paint.s(user.Colour.RED, "line").signature.args == ("red", "line")
        assert paint.delay(user.Colour.BLUE).get(timeout=TIMEOUT) == "blue/fill"
        with pytest.raises(TaskFailed, match="argument 'colour' expects Colour, got str 'green'"):
            app.send_task(Signature("paint", ["green"])).get(timeout=TIMEOUT)
