"""The Task protocol, and the adapter that lets a plain function be a task."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from machinery.errors import ArgumentError
from machinery.jsonvalues import JSONValue

__all__ = ["FunctionTask", "Task", "as_task"]


@runtime_checkable
class Task(Protocol):
    """What a worker runs: ``run`` gets the signature's args and returns the result.

    Raising an exception is the task's error; its text goes to ``on_error`` callbacks. The result
    must be a JSON value (it is stored and may be prepended to callbacks' args).
    """

    def run(self, args: tuple[JSONValue, ...]) -> object: ...


class FunctionTask:
    """A plain function as a Task: ``run(args)`` calls ``function(*args)``.

    A call whose args do not fit the function's parameters fails with an ``ArgumentError`` before
    the function runs, naming the task and what it expected.
    """

    __slots__ = ("_signature", "function", "name")

    def __init__(self, function: Callable[..., object], name: str | None = None) -> None:
        self.function = function
        self.name = name or getattr(function, "__qualname__", repr(function))
        try:
            self._signature: inspect.Signature | None = inspect.signature(function)
        except (TypeError, ValueError):  # builtins without a signature
            self._signature = None

    def run(self, args: tuple[JSONValue, ...]) -> object:
        if self._signature is not None:
            try:
                self._signature.bind(*args)
            except TypeError as exc:
                raise ArgumentError(f"{self.name}{self._signature}: {exc}") from None
        return self.function(*args)

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


