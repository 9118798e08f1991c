"""A Go task's several results (Go's ``Results`` list with two or more typed values), in Go mode
with Go's Redis layout: a Python worker passes each one on as its own argument, appended, as Go
Machinery v1's worker does (``taskSucceeded``: callbacks and chord callbacks); ``AsyncResult.get()``
reads them as a tuple; and what Python workers store, a Go worker reads and appends as Go does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from machinery import App, AsyncResult, Config, Signature
from machinery.backends.redis_go import GoRedisBackend
from machinery.brokers.base import Delivery
from machinery.execution import Executor
from machinery.registry import Registry
from machinery.routing import Router
from machinery.settling import Settler
from machinery.states import TaskResult, TaskState
from machinery.workflows import chord
from tests.interop.capture import Capture
from tests.support.amqp import amqp_config
from tests.support.gointerop import GoProgram
from tests.support.names import unique_name
from tests.support.waiting import TIMEOUT
from tests.support.workers import running

GO = Config(broker_url="memory://go-results", wire_format="go", default_queue="machinery_tasks",
            binding_key="machinery_task")

TWO: list[dict[str, object]] = [{"Type": "int64", "Value": 1}, {"Type": "string", "Value": "a"}]


@pytest.fixture
def backend(redis_url: str) -> Iterator[GoRedisBackend]:
    b = GoRedisBackend(redis_url, expires_in=600)
    yield b
    b.close()


def _go_redis(redis_url: str) -> dict[str, object]:
    parts = urlsplit(redis_url)
    return {"Redis": f"{parts.hostname}:{parts.port or 6379}", "DB": int(parts.path.strip("/") or 0)}


def _go_member(
    go: GoProgram, redis_url: str, group: str, uuid: str, results: list[dict[str, object]]
) -> dict[str, Any]:
    """A chord member finished by a Go worker with ``results`` (its state written, the chord checked)."""
    [outcome] = go._run("member", [json.dumps({**_go_redis(redis_url), "TaskUUID": uuid, "TaskName": "go_member",
                                               "GroupUUID": group, "Results": results}).encode()])
    assert outcome["ok"], outcome
    done: dict[str, Any] = outcome
    return done


def _go_state(
    go: GoProgram, raw: redis.Redis, uuid: str, results: list[dict[str, object]], state: str = "SUCCESS"
) -> None:
    """A task state written as Go's Redis backend writes it."""
    [document] = go._run("writestate", [json.dumps({"TaskUUID": uuid, "TaskName": "go_task", "State": state,
                                                    "Results": results}).encode()])
    raw.set(uuid, json.dumps(document), ex=600)


def _settle(executor: Executor, broker: Capture, backend: GoRedisBackend, delivery: Delivery) -> None:
    outcome = executor.process(delivery)
    assert outcome is not None
    Settler(broker, backend, release=lambda _d: None, on_pause=lambda _p: None,
            stopping=threading.Event()).settle_now([outcome])


def _args(decoded: dict[str, Any]) -> list[tuple[str, object]]:
    assert decoded["ok"], decoded
    return [(a["Type"], a["Value"]) for a in decoded["tasks"][0]["Args"]]


def test_a_chord_completed_here_appends_each_result_of_each_go_member(
    go: GoProgram, backend: GoRedisBackend, redis_url: str
) -> None:
    broker = Capture()
    registry = Registry()
    registry.register("square", lambda x: x * x)
    work = chord([Signature("go_two", []), Signature("go_none", []), Signature("square", [3])],
                 Signature("collect", ["own"]))
    backend.group_start(work.group.group_uuid, [s.uuid for s in work.group.tasks])
    backend.set_many([TaskResult(s.uuid, TaskState.PENDING, s.name) for s in work.group.tasks])  # as App does
    first, second, last = work.group.tasks
    assert not _go_member(go, redis_url, work.group.group_uuid, first.uuid, TWO)["completed"]
    assert not _go_member(go, redis_url, work.group.group_uuid, second.uuid, [])["completed"]
    _settle(Executor(GO, registry, broker, backend), broker, backend,
            Delivery("machinery_tasks", Router(GO).message(last).body, tag=1))
    [callback] = [m for m in broker.published if b'"Name":"collect"' in m.body]
    [decoded] = go.decode([callback.body])
    # Go's order: the callback's own args, then each member's results in group order, each its own arg.
    assert _args(decoded) == [("string", "own"), ("int64", 1), ("string", "a"), ("int64", 9)]
    assert backend.get(first.uuid) is not None
    assert backend.results_of(first.uuid) == (1, "a")
    assert backend.results_of(second.uuid) == ()


def test_a_chord_completed_in_go_appends_what_python_members_stored_as_go_does(
    go: GoProgram, backend: GoRedisBackend, redis_url: str
) -> None:
    group = f"group_{unique_name()}"
    uuids = [f"task_{unique_name()}" for _ in range(4)]
    backend.group_start(group, uuids)
    backend.group_add_result(group, uuids[0], (1, 2))  # one []int64 result
    backend.group_add_result(group, uuids[1], None)  # no result
    backend.group_add_result(group, uuids[2], "x")
    outcome = _go_member(go, redis_url, group, uuids[3], TWO)
    assert outcome["triggered"]
    assert [(a["Type"], a["GoType"], a["Value"]) for a in outcome["appended"]] == [
        ("[]int64", "[]int64", [1, 2]), ("string", "string", "x"), ("int64", "int64", 1), ("string", "string", "a"),
    ]


def test_a_redelivered_go_run_task_passes_each_of_its_results_to_its_callbacks(
    go: GoProgram, backend: GoRedisBackend, redis_url: str
) -> None:
    """A Go worker ran the task and stored two results but its ack was lost: the Python worker that
    gets the message again does not run it, and sends its callbacks as Go would have."""
    broker = Capture()
    registry = Registry()
    registry.register("two", lambda: (1, "a"))
    uuid = f"task_{unique_name()}"
    [body] = go.encode([{"UUID": uuid, "Name": "two", "OnSuccess": [
        {"UUID": "task_cb", "Name": "next", "Args": [{"Name": "", "Type": "bool", "Value": True}]}]}])
    raw = redis.Redis.from_url(redis_url)
    try:
        _go_state(go, raw, uuid, TWO)
    finally:
        raw.close()
    _settle(Executor(GO, registry, broker, backend), broker, backend,
            Delivery("machinery_tasks", body, tag=1, delivery_count=2))
    [decoded] = go.decode([m.body for m in broker.published])
    assert _args(decoded) == [("bool", True), ("int64", 1), ("string", "a")]
    assert backend.results_of(uuid) == (1, "a")  # not rewritten as one result


def test_a_python_callback_of_a_go_step_with_two_results_gets_both_as_go_sends_them(
    go: GoProgram, tmp_path: Path, redis_url: str
) -> None:
    """A chain whose first step runs in Go and returns two values: Go's worker appends both to the
    next step, which runs here."""
    config = amqp_config(tmp_path).replace(result_backend=redis_url, wire_format="go")
    last = f"task_{unique_name()}"
    with App(config) as app:
        @app.task(name="label")
        def label(prefix: str, count: int, unit: str) -> str:
            return f"{prefix}{count}{unit}"

        app.broker.declare([config.default_queue])
        [step1] = go.encode([{"UUID": f"task_{unique_name()}", "Name": "go_step", "OnSuccess": [
            {"UUID": last, "Name": "label", "RoutingKey": config.binding_key,
             "Args": [{"Name": "", "Type": "string", "Value": "n="}]}]}])
        for body in go.succeed(step1, [{"Type": "int64", "Value": 7}, {"Type": "string", "Value": "kg"}]):
            app.broker.publish(config.default_queue, body)
        with running(app):
            assert app.result(last).get(timeout=TIMEOUT) == "n=7kg"


def test_a_go_chord_with_multi_result_members_fires_here_with_each_result_appended(
    go: GoProgram, tmp_path: Path, redis_url: str
) -> None:
    """Go sends a chord; two members run on Go workers (two results each), the last one on a
    Python worker, which fires the callback, run here too; a Go member's result reads as a tuple."""
    config: Config = amqp_config(tmp_path).replace(result_backend=redis_url, wire_format="go")
    group = f"group_{unique_name()}"
    members = [f"task_{unique_name()}" for _ in range(3)]
    callback = f"task_{unique_name()}"
    with App(config) as app:
        @app.task(name="double")
        def double(x: int) -> int:
            return 2 * x

        @app.task(name="join")
        def join(*parts: object) -> str:
            return ",".join(map(str, parts))

        app.broker.declare([config.default_queue])
        raw = redis.Redis.from_url(redis_url)
        try:
            [meta] = go.read_groups([json.dumps({"GroupUUID": group, "TaskUUIDs": members,
                                                 "CreatedAt": "2030-01-01T00:00:00Z"}).encode()])
            raw.set(group, json.dumps(meta), ex=600)
            for uuid in members:  # Go's SendChord: every member PENDING before any is sent
                _go_state(go, raw, uuid, [], state="PENDING")
        finally:
            raw.close()
        for i, uuid in enumerate(members[:2]):
            two: list[dict[str, object]] = [{"Type": "int64", "Value": i}, {"Type": "string", "Value": f"s{i}"}]
            _go_member(go, redis_url, group, uuid, two)
        [body] = go.encode([{"UUID": members[2], "Name": "double", "RoutingKey": config.binding_key,
                             "GroupUUID": group, "GroupTaskCount": 3,
                             "Args": [{"Name": "", "Type": "int64", "Value": 21}],
                             "ChordCallback": {"UUID": callback, "Name": "join", "RoutingKey": config.binding_key,
                                               "Args": [{"Name": "", "Type": "string", "Value": "go"}]}}])
        app.broker.publish(config.default_queue, body)
        with running(app):
            assert app.result(callback).get(timeout=TIMEOUT) == "go,0,s0,1,s1,42"
        several: object = app.result(members[0]).get(timeout=TIMEOUT)
        assert several == (0, "s0")
        stored = app.backend.get(members[1]) if app.backend is not None else None
        assert stored is not None and stored.state is TaskState.SUCCESS and stored.result == (1, "s1")


def test_get_reads_a_go_task_s_results_as_none_one_value_or_a_tuple(
    go: GoProgram, tmp_path: Path, redis_url: str
) -> None:
    """``get()`` gives plain JSON: no result is None, one is its value (a list value a list), several
    a tuple, which sets them apart from one list."""
    config: Config = amqp_config(tmp_path).replace(result_backend=redis_url, wire_format="go")
    cases: list[tuple[list[dict[str, object]], object]] = [
        ([], None), ([{"Type": "float64", "Value": 2.5}], 2.5),
        ([{"Type": "[]int64", "Value": [1, 2]}], [1, 2]), (TWO, (1, "a")),
        ([{"Type": "[]int64", "Value": [1]}, {"Type": "bool", "Value": False}, {"Type": "[]uint8", "Value": "AQ=="}],
         ([1], False, "AQ==")),
    ]
    uuids = [f"task_{unique_name()}" for _ in cases]
    raw = redis.Redis.from_url(redis_url)
    try:
        for uuid, (results, _) in zip(uuids, cases, strict=True):
            _go_state(go, raw, uuid, results)
    finally:
        raw.close()
    with App(config) as app:
        values = [app.result(u).get(timeout=TIMEOUT) for u in uuids]
        typed = AsyncResult[tuple[int, str]](uuids[3], app.backend, result_type=tuple[int, str])
        assert typed.get(timeout=TIMEOUT) == (1, "a")
    assert values == [expected for _, expected in cases]
    assert [type(v) for v in values] == [type(expected) for _, expected in cases]
