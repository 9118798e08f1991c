"""The demo's tasks and app (add, multiply and a failing task), used by ``machinery demo``.

The app is configured from the environment (``MACHINERY_*``), so the demo can point a worker
process and itself at the same temporary SQLite files. ``examples/`` holds the same tasks as a
project of your own would.
"""

from __future__ import annotations

import math

from machinery._speedups import parse_number_args
from machinery.app import App
from machinery.config import load_config
from machinery.jsonvalues import JSONValue

__all__ = ["AddTask", "FailingTask", "MultiplyTask", "app", "describe_error"]


class AddTask:
    """The sum of its number args."""

    def run(self, args: tuple[JSONValue, ...]) -> float:
        return math.fsum(parse_number_args(args))


class MultiplyTask:
    """The product of its number args."""

    def run(self, args: tuple[JSONValue, ...]) -> float:
        return math.prod(parse_number_args(args))


class FailingTask:
    """Always fails, to show error callbacks."""

    def run(self, args: tuple[JSONValue, ...]) -> None:
        raise ValueError(f"refusing to work on {list(args)}")


def describe_error(error: str, *context: JSONValue) -> str:
    """An error callback: gets the failed task's error text first."""
    return f"error callback received: {error!r}"


app = App(load_config())
app.register_tasks({"add": AddTask(), "multiply": MultiplyTask(), "fail": FailingTask(), "on_error": describe_error})
