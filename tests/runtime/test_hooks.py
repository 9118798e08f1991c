"""Hooks: called in the order registered at each point of a task's life, their decisions obeyed,
their exceptions logged and survived. Run on every broker of ``brokers.FACTORIES``."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import pytest

from machinery import (
    App,
    Delay,
    Hook,
    Outcome,
    Signature,
    Skip,
    TaskCall,
    TaskFailed,
    TaskState,
    WorkerInfo,
    chain,
)
from machinery.hooks import Hooks, RunDecision
from tests.runtime.tasks import FLAKY_COUNTDOWN, register_outcome_tasks
from tests.support.waiting import TIMEOUT, eventually
from tests.support.workers import running


@dataclass(eq=False)
class Recorder(Hook):
    """Records every call as (label, point, detail)."""

    label: str
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _add(self, point: str, detail: str) -> None:
        with self.lock:
            self.calls.append((self.label, point, detail))

    def points(self, name: str) -> list[str]:
        with self.lock:
            return [point for _, point, detail in self.calls if detail.startswith(name)]

    def before_publish(self, signature: Signature) -> Signature | None:
        self._add("before_publish", signature.name)
        return None

    def before_run(self, call: TaskCall) -> RunDecision | None:
        self._add("before_run", call.signature.name)
        return None

    def on_start(self, call: TaskCall) -> None:
        self._add("on_start", call.signature.name)

    def after_run(self, call: TaskCall, outcome: Outcome) -> None:
        self._add("after_run", f"{call.signature.name} {outcome.state}")

    def on_failure(self, call: TaskCall, error: str) -> None:
        self._add("on_failure", f"{call.signature.name} {error}")

    def on_retry(self, call: TaskCall, error: str, delay: float) -> None:
        self._add("on_retry", f"{call.signature.name} {delay:g}")

    def on_dead_letter(self, queue: str, reason: str, signature: Signature | None) -> None:
        self._add("on_dead_letter", reason)

    def worker_started(self, worker: WorkerInfo) -> None:
        self._add("worker_started", worker.name)

    def worker_stopped(self, worker: WorkerInfo) -> None:
        self._add("worker_stopped", worker.name)


def test_each_point_is_called_in_registration_order(app: App) -> None:
    register_outcome_tasks(app)
    first, second = Recorder("first"), Recorder("second")
    app.hooks.add(first)
    app.hooks.add(second)
    with running(app, concurrency=1):
        assert app.send_task(chain(Signature("add", [1, 2]), Signature("add", [3]))).get(timeout=TIMEOUT) == 6
    both = [(label, point) for label, point, detail in first.calls + second.calls if detail.startswith("add")]
    assert both.count(("first", "before_publish")) == 2  # the chain's head, then the follow-up
    # Both saw the same calls, in the same order.
    assert [c[1:] for c in first.calls] == [c[1:] for c in second.calls]
    points = [p for _, p, d in first.calls if d.startswith("add") or p.startswith("worker")]
    assert points == [
        "worker_started", "before_publish", "before_run", "on_start", "before_publish", "after_run",
        "before_run", "on_start", "after_run", "worker_stopped",
    ]
    assert [d for _, p, d in first.calls if p == "after_run"] == ["add SUCCESS", "add SUCCESS"]


def test_failure_and_retry_points(app: App) -> None:
    register_outcome_tasks(app)
    rec = app.hooks.add(Recorder("r"))
    with running(app, concurrency=1):
        with pytest.raises(TaskFailed):
            app.send_task(Signature("boom", [])).get(timeout=TIMEOUT)
        with pytest.raises(TaskFailed):
            app.send_task(Signature("flaky", [], retry_count=1)).get(timeout=TIMEOUT)
        assert eventually(lambda: len(rec.points("flaky")) >= 8)
    assert rec.points("boom") == ["before_publish", "before_run", "on_start", "on_failure", "after_run"]
    assert [d for _, p, d in rec.calls if p == "after_run"] == ["boom FAILURE", "flaky RETRY", "flaky FAILURE"]
    assert ("r", "on_retry", f"flaky {FLAKY_COUNTDOWN:g}") in rec.calls
    # The retry is published again through before_publish.
    assert rec.points("flaky").count("before_publish") == 2


def test_skip_records_revoked_and_sends_no_callbacks(app: App) -> None:
    register_outcome_tasks(app)

    class Revoke(Hook):
        def before_run(self, call: TaskCall) -> RunDecision | None:
            if call.signature.args == (1, 1):
                return Skip("revoked by test")
            return None

    rec = Recorder("after")
    app.hooks.add(Revoke())
    app.hooks.add(rec)
    with running(app, concurrency=1):
        result = app.send_task(chain(Signature("add", [1, 1]), Signature("add", [5])))
        with pytest.raises(TaskFailed, match="revoked: revoked by test"):
            result.steps[0].get(timeout=TIMEOUT)
        assert app.send_task(Signature("add", [2, 2])).get(timeout=TIMEOUT) == 4
    assert result.steps[0].state is TaskState.REVOKED
    assert result.steps[1].state is TaskState.PENDING  # its callback was never sent
    # The recorder's before_run was not asked (the first decision wins), its after_run was; the
    # skipped task never started.
    assert [f"{p} {d}" for _, p, d in rec.calls if p in ("before_run", "on_start", "after_run")] == [
        "after_run add REVOKED", "before_run add", "on_start add", "after_run add SUCCESS",
    ]
    assert app.broker.depth(app.config.default_queue).ready == 0


def test_delay_gives_the_message_back_and_it_runs_later(app: App) -> None:
    register_outcome_tasks(app)
    seen: list[int] = []

    class DelayOnce(Hook):
        def before_run(self, call: TaskCall) -> RunDecision | None:
            seen.append(call.delivery_count)
            return Delay(0.2) if len(seen) == 1 else None

    outcomes: list[tuple[TaskState, bool]] = []
    app.hooks.add(DelayOnce())
    app.hooks.post_task(lambda sig, outcome: outcomes.append((outcome.state, outcome.ran)))
    with running(app, concurrency=1):
        assert app.send_task(Signature("add", [2, 3])).get(timeout=TIMEOUT) == 5
    assert len(seen) == 2
    assert seen[1] >= 2
    assert outcomes == [(TaskState.PENDING, False), (TaskState.SUCCESS, True)]


def test_before_publish_may_replace_the_signature(app: App) -> None:
    @app.task
    def header(name: str) -> str:
        return "unset"

    seen: list[object] = []

    class Stamp(Hook):
        def before_publish(self, signature: Signature) -> Signature | None:
            return signature.replace(headers={**signature.headers, "stamp": "yes"})

    app.hooks.add(Stamp())
    app.hooks.pre_task(lambda sig: seen.append(sig.headers.get("stamp")))
    with running(app, concurrency=1):
        app.send_task(Signature("header", ["x"])).get(timeout=TIMEOUT)
    assert seen == ["yes"]


def test_a_failing_hook_is_logged_and_the_task_still_runs(app: App, caplog: pytest.LogCaptureFixture) -> None:
    register_outcome_tasks(app)

    class Broken(Hook):
        def __repr__(self) -> str:
            return "<Broken>"

        def before_publish(self, signature: Signature) -> Signature | None:
            raise RuntimeError("publish hook broke")

        def before_run(self, call: TaskCall) -> RunDecision | None:
            raise RuntimeError("run hook broke")

        def after_run(self, call: TaskCall, outcome: Outcome) -> None:
            raise RuntimeError("after hook broke")

    rec = Recorder("after")
    app.hooks.add(Broken())
    app.hooks.add(rec)
    with caplog.at_level(logging.ERROR, logger="machinery.hooks"), running(app, concurrency=1):
        assert app.send_task(Signature("add", [1, 1])).get(timeout=TIMEOUT) == 2
    messages = [r.getMessage() for r in caplog.records if r.name == "machinery.hooks"]
    assert "hook <Broken> failed in before_publish; carrying on" in messages
    assert "hook <Broken> failed in before_run; carrying on" in messages
    assert "hook <Broken> failed in after_run; carrying on" in messages
    assert rec.points("add") == ["before_publish", "before_run", "on_start", "after_run"]


def test_dead_letter_point_for_an_undecodable_message(app: App) -> None:
    rec = app.hooks.add(Recorder("r"))
    queue = app.config.default_queue
    app.broker.declare([queue])
    app.broker.publish(queue, b"not json")
    with running(app, concurrency=1):
        assert eventually(lambda: any(p == "on_dead_letter" for _, p, _ in rec.calls))
    assert app.broker.depth(queue).dead == 1


class _Plain(Hook):
    pass


def test_registry_rules() -> None:
    hooks = Hooks()

    def wants() -> tuple[bool, bool, bool]:
        return hooks.wants_run, hooks.wants_publish, hooks.wants_outcome

    assert wants() == (False, False, False)
    plain = hooks.add(_Plain())
    assert wants() == (False, False, False)  # it overrides nothing
    with pytest.raises(ValueError, match="registered already"):
        hooks.add(plain)
    with pytest.raises(TypeError, match=r"subclass machinery\.Hook"):
        hooks.add(object())  # type: ignore[type-var]
    recorder = hooks.add(Recorder("x"))
    assert wants() == (True, True, True)
    assert list(hooks) == [plain, recorder]
    hooks.remove(recorder)
    assert wants() == (False, False, False)
    with pytest.raises(ValueError, match="not registered"):
        hooks.remove(recorder)


def test_a_uuid_changing_or_wrongly_typed_return_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    class Rename(Hook):
        def before_publish(self, signature: Signature) -> Signature | None:
            return Signature(signature.name, [9])

        def before_run(self, call: TaskCall) -> RunDecision | None:
            return "skip"  # type: ignore[return-value]

    hooks = Hooks()
    hooks.add(Rename())
    sig = Signature("add", [1])
    assert hooks.before_publish(sig) is sig
    assert hooks.before_run(TaskCall(sig, "q")) is None
    assert "changed the task's UUID" in caplog.text
    assert "not Skip or Delay" in caplog.text


class _Gate(Hook):
    """Only ``before_run``: skips tasks named ``boom``, fails for ``add`` with a first argument of
    0, lets the rest run; so the worker takes the path that tells no outcome."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def before_run(self, call: TaskCall) -> RunDecision | None:
        self.seen.append(call.signature.name)
        if call.signature.name == "boom":
            return Skip("gated")
        if call.signature.args[:1] == (0,):
            raise RuntimeError("gate broke")
        return None


def test_a_before_run_only_hook_decides_without_outcomes_told(app: App) -> None:
    register_outcome_tasks(app)
    gate = app.hooks.add(_Gate())
    assert (app.hooks.wants_run, app.hooks.wants_outcome) == (True, False)
    with running(app, concurrency=1):
        assert app.send_task(chain(Signature("add", [1, 2]), Signature("add", [3]))).get(timeout=TIMEOUT) == 6
        assert app.send_task(Signature("add", [0, 5])).get(timeout=TIMEOUT) == 5  # a failing hook: it runs
        skipped = app.send_task(Signature("boom", []))
        assert eventually(lambda: (r := app.backend.get(skipped.task_uuid)) is not None  # type: ignore[union-attr]
                          and r.state is TaskState.REVOKED and r.error == "gated")
    assert gate.seen == ["add", "add", "add", "boom"]
