"""The Task protocol, and the adapter that lets a plain function be a task."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from machinery.conversion import ArgumentConverter, result_to_wire
from machinery.jsonvalues import JSONValue

__all__ = ["FunctionTask", "Task", "as_task", "positional_names"]


@runtime_checkable
class Task(Protocol):
    """What a worker runs: ``run`` gets the signature's args and returns the result.

    Raising an exception is the task's error; its text goes to ``on_error`` callbacks. The result
    must be a JSON value (it is stored and may be prepended to callbacks' args).
    """

    def run(self, args: tuple[JSONValue, ...]) -> object: ...


class FunctionTask:
    """A plain function as a Task: ``run(args)`` calls ``function(*args)``.

    Before the function runs, the args are checked against its parameters and converted to what
    their annotations ask for (``float``, ``list[int]``, a dataclass...); a wrong count or type fails
    with an ``ArgumentError`` naming the task, the parameter and the expected type. Unannotated
    parameters get the message's values as they are. A dataclass, enum or TypedDict the function
    returns is stored as JSON.
    """

    __slots__ = ("_converter", "function", "name")

    def __init__(self, function: Callable[..., object], name: str | None = None) -> None:
        self.function = function
        self.name = name or getattr(function, "__qualname__", repr(function))
        try:
            self._converter: ArgumentConverter | None = ArgumentConverter(function, str(self.name))
        except (TypeError, ValueError):  # builtins without a signature
            self._converter = None

    def run(self, args: tuple[JSONValue, ...]) -> object:
        if self._converter is None:
            return self.function(*args)
        return result_to_wire(self.function(*self._converter.convert(args)))

    def __call__(self, *args: Any) -> object:
        """Call the function directly, in this process (no queue involved)."""
        return self.function(*args)

    def __repr__(self) -> str:
        return f"FunctionTask({self.name})"


def as_task(obj: Task | Callable[..., object], name: str) -> Task:
    """``obj`` as a Task: Task objects as they are, plain callables wrapped in FunctionTask."""
    if isinstance(obj, FunctionTask):
        return obj
    if isinstance(obj, type):
        raise TypeError(f"task {name!r}: register an instance of {obj.__name__}, not the class itself")
    run = getattr(obj, "run", None)
    if run is not None and callable(run):
        return obj  # type: ignore[return-value]
    if callable(obj):
        return FunctionTask(obj, name)
    raise TypeError(f"task {name!r}: {type(obj).__name__} has no run(args) method and is not callable")




_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def positional_names(task: Task) -> tuple[str, ...]:
    """The names of the positional parameters a task's args fill, in order: a function task's
    parameters up to its first ``*args``, keyword-only or ``**kwargs`` one (a bound method's
    ``self`` is already left out); none for a Task object, whose ``run(args)`` takes them all as
    one tuple, or a callable without a signature."""
    if not isinstance(task, FunctionTask):
        return ()
    try:
        params = inspect.signature(task.function).parameters.values()
    except (TypeError, ValueError):
        return ()
    names: list[str] = []
    for param in params:
        if param.kind not in _POSITIONAL:
            break
        names.append(param.name)
    return tuple(names)
