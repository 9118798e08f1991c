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
