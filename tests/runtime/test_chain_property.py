"""Property: in generated chains of non-commutative tasks with generated immutable flags, each step
receives exactly what a reference model of the chain rule says; a failing step stops the chain
and its error callback receives the error text first. Run on every broker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from machinery import App, Signature, TaskFailed, TaskFunction, TaskState, TypedSignature, chain
from tests.runtime.tasks import register_test_tasks
from tests.support.waiting import TIMEOUT
from tests.support.workers import running


@dataclass(frozen=True)
class Step:
    task: str  # "subtract", "concatenate" or "fail"
    args: tuple[str, ...]
    immutable: bool


def model(steps: list[Step]) -> list[tuple[str, ...] | None]:
    """The args each step receives under the chain rule (None: the step never runs)."""
    received: list[tuple[str, ...] | None] = []
    previous: str | None = None  # result passed on by the step before, if it passes one
    stopped = False
    for step in steps:
        if stopped:
            received.append(None)
            continue
        args = step.args if previous is None else (previous, *step.args)
        received.append(args)
        if step.task == "fail":
            stopped = True
            continue
        result = apply(step.task, args)
        previous = None if step.immutable else result
    return received


def apply(task: str, args: tuple[str, ...]) -> str:
    if task == "concatenate":
        return "".join(args)
    first, rest = (args[0], args[1:]) if args else ("", ())
    drop = set("".join(rest))
    return "".join(c for c in first if c not in drop)


texts = st.text(alphabet="abcxyz", max_size=3)
steps_strategy = st.lists(
    st.builds(Step, st.sampled_from(["subtract", "concatenate", "concatenate", "subtract", "fail"]),
              st.lists(texts, max_size=2).map(tuple), st.booleans()),
    min_size=1, max_size=5,
)


class TypedTasks:
    """The chain's tasks as typed task functions (registered as ``typed_<name>``)."""

    def __init__(self, app: App) -> None:
        @app.task(name="typed_subtract")
        def subtract(first: str = "", *rest: str) -> str:
            drop = set("".join(rest))
            return "".join(c for c in first if c not in drop)

        @app.task(name="typed_concatenate")
        def concatenate(*parts: str) -> str:
            return "".join(parts)

        @app.task(name="typed_fail")
        def fail(*args: str) -> str:
            raise ValueError(f"failed on {list(args)}")

        self.tasks: dict[str, TaskFunction[..., str]] = {"subtract": subtract, "concatenate": concatenate, "fail": fail}

    def steps(self, steps: list[Step]) -> list[Signature]:
        """The typed signatures of ``steps``: ``.partial`` where the step before passes its result
        on, ``.s``/``.si`` where it does not, as a user writes them."""
        sigs: list[Signature] = []
        passes = False
        for step in steps:
            task = self.tasks[step.task]
            if passes:
                typed: TypedSignature[Any, str, Any] = task.partial(*step.args)
                if step.immutable:
                    typed = typed.immutable()
            else:
                typed = task.si(*step.args) if step.immutable else task.s(*step.args)
            sigs.append(typed.signature)
            passes = not step.immutable
        return sigs


def check_chain(app: App, steps: list[Step], typed: TypedTasks | None = None) -> None:
    sigs = [Signature(s.task, s.args, immutable=s.immutable) for s in steps] if typed is None else typed.steps(steps)
    # Each step gets an error callback recording what it is sent.
    sigs = [sig.link_error(Signature("echo", ["error-callback"])) for sig in sigs]
    result = app.send_task(chain(*sigs))
    expected = model(steps)
    last_run = max(i for i, e in enumerate(expected) if e is not None)
    try:
        value = result.get(timeout=TIMEOUT)
        failed_at = None
    except TaskFailed as exc:
        failed_at = [s.uuid for s in sigs].index(exc.task_uuid)
        value = None
    for i, (sig, step, args) in enumerate(zip(sigs, steps, expected, strict=True)):
        record = app.result(sig.uuid).info()
        if args is None:
            assert record.state is TaskState.PENDING, f"step {i} ran after the chain stopped"
        elif step.task == "fail":
            assert record.state is TaskState.FAILURE
            assert record.error == f"failed on {list(args)}"
            callback = sig.on_error[0]
            assert app.result(callback.uuid).get(timeout=TIMEOUT) == [record.error, "error-callback"]
        else:
            assert record.state is TaskState.SUCCESS, f"step {i}: {record}"
            assert record.result == apply(step.task, args), f"step {i} received other args than {args}"
    if steps[last_run].task == "fail":
        assert failed_at == last_run
    else:
        assert failed_at is None
        assert value == apply(steps[-1].task, expected[-1] or ())


@pytest.mark.parametrize("typed", [False, True], ids=["by-name", "typed"])
def test_chain_steps_receive_what_the_model_says(app: App, typed: bool) -> None:
    register_test_tasks(app)
    typed_tasks = TypedTasks(app) if typed else None
    with running(app, concurrency=2):

        @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(steps_strategy)
        def check(steps: list[Step]) -> None:
            check_chain(app, steps, typed_tasks)

        check()


def test_model_matches_the_example_chain() -> None:
    steps = [Step("concatenate", ("ab",), False), Step("concatenate", ("c",), True), Step("subtract", ("a",), False)]
    assert model(steps) == [("ab",), ("ab", "c"), ("a",)]
