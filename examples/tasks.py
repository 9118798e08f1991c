"""Example tasks: AddTask and MultiplyTask as classes with ``run(self, args)``, a task
that fails (for error callbacks), and plain functions registered as tasks in ``app.py``."""

from __future__ import annotations

from machinery import JSONValue, parse_number_args


class AddTask:
    """Adds its number args: ``add(1, 1) -> 2.0``."""

    def run(self, args: tuple[JSONValue, ...]) -> float:
        total = 0.0
        for number in parse_number_args(args):
            total += number
        return total


class MultiplyTask:
    """Multiplies its number args: ``multiply(13, 4) -> 52.0``."""

    def run(self, args: tuple[JSONValue, ...]) -> float:
        product = 1.0
        for number in parse_number_args(args):
            product *= number
        return product


class FailingTask:
    """Always fails; its error text goes to its ``on_error`` callbacks."""

    def run(self, args: tuple[JSONValue, ...]) -> None:
        raise ValueError(f"cannot process {list(args)}")


def report_error(error: str, *context: JSONValue) -> str:
    """An error callback: the failed task's error text comes first."""
    return f"error callback got {error!r} with {list(context)}"
