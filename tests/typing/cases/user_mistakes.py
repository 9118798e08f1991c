"""User-style mistakes; every line with an E comment must be reported by mypy --strict and pyright, no other line."""
# pyright: strict

from __future__ import annotations

from machinery import JSONValue, Signature, Task, chain, parse_number_args


class AddTask:
    def run(self, args: tuple[JSONValue, ...]) -> float:
        return sum(parse_number_args(args))


class NotATask:
    def execute(self, args: tuple[JSONValue, ...]) -> float:
        return 0.0


Signature("add", [1, 1], priority="high")  # E: wrong field type
Signature(42)  # E: name must be str
Signature("add", [1, 1], immutable="yes")  # E: immutable must be bool
AddTask().run(42)  # E: run called with the wrong type
task: Task = NotATask()  # E: no run method
sig = Signature("add")
sig.name = "other"  # E: frozen
count: int = sig.args  # E: args is a tuple
chain(sig, "multiply")  # E: chain takes signatures


# Hooks
from machinery import App, Hook, TaskCall  # noqa: E402


class BadHook(Hook):
    def before_run(self, call: TaskCall) -> str:  # E: a decision is Skip, Delay or None
        return "skip"


hooks_app = App()
hooks_app.hooks.add(object())  # E: hooks subclass Hook
hooks_app.hooks.pre_task(lambda sig, extra: None)  # E: pre-task handlers take the signature only
