"""Tasks the in-process runtime tests register on their App."""

from __future__ import annotations

import math
import threading
from collections import Counter

from machinery import App, JSONValue, Retry, parse_number_args

__all__ = ["Flaky", "register_test_tasks"]


class Flaky:
    """Fails (or asks for a retry) the first ``failures`` times it runs, then returns "ok"."""

    def __init__(self, failures: int, *, ask: bool = False) -> None:
        self.failures = failures
        self.ask = ask
        self.runs = 0
        self._lock = threading.Lock()

    def run(self, args: tuple[JSONValue, ...]) -> str:
        with self._lock:
            self.runs += 1
            runs = self.runs
        if runs <= self.failures:
            if self.ask:
                raise Retry("not yet", countdown=0.05)
            raise RuntimeError(f"flaky failure {runs}")
        return "ok"


def register_test_tasks(app: App) -> Counter[str]:
    """Register add, multiply, subtract, concatenate, fail, silent_fail, echo, not_json, nan;
    returns a counter of runs per task name."""
    runs: Counter[str] = Counter()
    lock = threading.Lock()

    def count(name: str) -> None:
        with lock:
            runs[name] += 1

    @app.task(name="add")
    def add(*args: float) -> float:
        count("add")
        return math.fsum(parse_number_args(args))

    @app.task(name="multiply")
    def multiply(*args: float) -> float:
        count("multiply")
        return math.prod(parse_number_args(args))

    @app.task(name="subtract")
    def subtract(first: str = "", *rest: str) -> str:
        """Removes from ``first`` every character that appears in the later args."""
        count("subtract")
        drop = set("".join(rest))
        return "".join(c for c in first if c not in drop)

    @app.task(name="concatenate")
    def concatenate(*parts: str) -> str:
        count("concatenate")
        return "".join(parts)

    @app.task(name="fail")
    def fail(*args: JSONValue) -> None:
        count("fail")
        raise ValueError(f"failed on {list(args)}")

    @app.task(name="silent_fail")
    def silent_fail() -> None:
        count("silent_fail")
        raise KeyError()

    @app.task(name="echo")
    def echo(*args: JSONValue) -> list[JSONValue]:
        count("echo")
        return list(args)

    @app.task(name="not_json")
    def not_json() -> object:
        count("not_json")
        return object()

    @app.task(name="nan")
    def nan() -> float:
        count("nan")
        return float("nan")

    return runs


#: Seconds a ``flaky`` task of ``register_outcome_tasks`` asks to wait before its retry.
FLAKY_COUNTDOWN = 0.01


def register_outcome_tasks(app: App) -> None:
    """Register one task per outcome, for the hook, metrics and event tests: ``add(a, b)``
    succeeds, ``boom()`` fails with "boom", ``flaky()`` asks for a retry every time (so it fails
    once its retries are spent)."""

    @app.task
    def add(a: float, b: float) -> float:
        return a + b

    @app.task
    def boom() -> None:
        raise ValueError("boom")

    @app.task
    def flaky() -> None:
        raise Retry(countdown=FLAKY_COUNTDOWN)
