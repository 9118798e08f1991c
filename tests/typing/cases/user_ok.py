"""User-style code that must type-check cleanly under mypy --strict."""
# pyright: strict

from __future__ import annotations

from datetime import datetime, timezone

from machinery import JSONValue, Signature, Task, chain, decode, encode, group, parse_number_args


class AddTask:
    def run(self, args: tuple[JSONValue, ...]) -> float:
        return sum(parse_number_args(args))


task: Task = AddTask()
total: object = task.run((1, 2))
sig = Signature("add", [1, 1], routing_key="machinery_tasks", priority=3, eta=datetime.now(timezone.utc))
steps = chain(sig, Signature("add", [5, 6]), Signature("multiply", [4]))
last_name: str = steps.last.name
members = group(Signature("a"), Signature("b"))
payload: bytes = encode(steps.head)
again: Signature = decode(payload)
numbers: list[float] = parse_number_args([1, 2.5])


# Hooks
from machinery import App, Delay, Hook, Outcome, Skip, TaskCall  # noqa: E402


class Limits(Hook):
    def before_run(self, call: TaskCall) -> Skip | Delay | None:
        if call.signature.name == "old":
            return Skip("switched off")
        return Delay(1.5) if call.delivery_count > 3 else None

    def after_run(self, call: TaskCall, outcome: Outcome) -> None:
        seconds: float = outcome.duration
        print(call.queue, outcome.state, seconds)


hooks_app = App()
limits: Hook = hooks_app.hooks.add(Limits())
hooks_app.hooks.post_task(lambda sig, outcome: print(sig.name, outcome.state))
hooks_app.hooks.pre_task(lambda sig: None)
