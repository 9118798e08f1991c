"""The registry takes Task objects and plain functions; names are unique."""

from __future__ import annotations

import pytest

from machinery import ArgumentError, FunctionTask, JSONValue, Registry, TaskNotRegistered, parse_number_args


class AddTask:
    def run(self, args: tuple[JSONValue, ...]) -> float:
        return sum(parse_number_args(args))


def multiply(x: float, y: float) -> float:
    return x * y


def test_task_objects_are_registered_as_they_are() -> None:
    reg = Registry()
    task = AddTask()
    assert reg.register("add", task) is task
    assert reg.get("add").run((1, 2)) == 3.0


def test_plain_functions_are_called_with_args_spread() -> None:
    reg = Registry()
    reg.register("multiply", multiply)
    assert reg.get("multiply").run((3, 4)) == 12


def test_function_called_with_wrong_arity_fails_before_running() -> None:
    task = FunctionTask(multiply, "multiply")
    with pytest.raises(ArgumentError, match="multiply"):
        task.run((1,))


def test_registering_a_name_twice_is_refused_unless_replacing() -> None:
    reg = Registry()
    reg.register("add", AddTask())
    with pytest.raises(ValueError, match="already registered"):
        reg.register("add", multiply)
    reg.register("add", multiply, replace=True)
    assert reg.get("add").run((2, 5)) == 10


def test_register_many_is_all_or_nothing() -> None:
    reg = Registry()
    with pytest.raises(TypeError):
        reg.register_many({"add": AddTask(), "bad": 42})  # type: ignore[dict-item]
    assert len(reg) == 0


def test_unknown_name_raises_task_not_registered() -> None:
    with pytest.raises(TaskNotRegistered, match="nope"):
        Registry().get("nope")


def test_registering_a_class_instead_of_an_instance_is_refused() -> None:
    with pytest.raises(TypeError, match="instance"):
        Registry().register("add", AddTask)
