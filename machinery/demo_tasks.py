"""The example tasks: ``AddTask`` and ``MultiplyTask`` as classes with ``run(self, args)``, and a
task that always fails (for error callbacks). ``machinery demo`` runs them, and ``examples/`` uses
them as a project of your own would; they live in the package so that an installed machinery has
them."""

from __future__ import annotations

import math

from machinery._speedups import parse_number_args
from machinery.jsonvalues import JSONValue

__all__ = ["AddTask", "FailingTask", "MultiplyTask"]


class AddTask:
    """The sum of its number args: ``add(1, 1) -> 2.0``."""

    def run(self, args: tuple[JSONValue, ...]) -> float:
        return math.fsum(parse_number_args(args))


class MultiplyTask:
    """The product of its number args: ``multiply(13, 4) -> 52.0``."""

    def run(self, args: tuple[JSONValue, ...]) -> float:
        return math.prod(parse_number_args(args))


class FailingTask:
    """Always fails; its error text goes to its ``on_error`` callbacks."""

    def run(self, args: tuple[JSONValue, ...]) -> None:
        raise ValueError(f"cannot process {list(args)}")
