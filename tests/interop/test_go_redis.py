"""Results and chord bookkeeping in Go Machinery v1's Redis layout (``wire_format: go``): what a
Python worker stores, the Go program reads with Go's structs and types, and the other way round;
a chord fires exactly once when Go and Python workers finish its members at the same time."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from machinery import App, Config, Signature
from machinery.backends import open_backend
from machinery.backends.redis_go import GoRedisBackend
from machinery.jsonvalues import JSONValue
from machinery.states import TaskResult, TaskState
from machinery.workflows import chord
from tests.support.amqp import amqp_config, forget_at_exit
from tests.support.gointerop import GoProgram
from tests.support.names import unique_name
from tests.support.waiting import TIMEOUT
from tests.support.workers import running


@pytest.fixture
def backend(redis_url: str) -> Iterator[GoRedisBackend]:
    b = GoRedisBackend(redis_url, expires_in=600)
    yield b
    b.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _stored(raw: redis.Redis, key: str) -> bytes:
    value = raw.get(key)
    assert isinstance(value, bytes), key
    return value


def _go_redis(redis_url: str) -> dict[str, object]:
    parts = urlsplit(redis_url)
    return {"Redis": f"{parts.hostname}:{parts.port or 6379}", "DB": int(parts.path.strip("/") or 0)}


def test_go_mode_with_a_redis_url_opens_the_go_layout(redis_url: str) -> None:
    backend = open_backend(Config(result_backend=redis_url, wire_format="go"))
    assert isinstance(backend, GoRedisBackend)
    backend.close()


VALUES: list[tuple[JSONValue, str, str, object]] = [
    (7, "int64", "int64", 7),
    (2.5, "float64", "float64", 2.5),
    ("text", "string", "string", "text"),
    (True, "bool", "bool", True),
    ((1, 2), "[]int64", "[]int64", [1, 2]),
    (("a",), "[]string", "[]string", ["a"]),
]


@pytest.mark.parametrize("case", VALUES)
def test_a_result_stored_here_is_read_by_go_under_the_task_uuid(
    go: GoProgram, backend: GoRedisBackend, raw: redis.Redis, case: tuple[JSONValue, str, str, object]
) -> None:
    value, type_name, go_type, go_value = case
    uuid = f"task_{unique_name()}"
    backend.set(TaskResult(uuid, TaskState.SUCCESS, "add", value))
    [state] = go.read_states([_stored(raw, uuid)])
    assert state["ok"], state
    assert (state["TaskUUID"], state["TaskName"], state["State"]) == (uuid, "add", "SUCCESS")
    assert [(r["Type"], r["GoType"], r["Value"]) for r in state["Results"]] == [(type_name, go_type, go_value)]
    assert 0 < raw.pttl(uuid) <= 600_000


def test_a_failure_and_a_none_result_are_read_by_go(go: GoProgram, backend: GoRedisBackend, raw: redis.Redis) -> None:
    failed, empty = f"task_{unique_name()}", f"task_{unique_name()}"
    backend.set(TaskResult(failed, TaskState.FAILURE, "div", None, "division by zero"))
    backend.set(TaskResult(empty, TaskState.SUCCESS, "noop", None))
    states = go.read_states([_stored(raw, failed), _stored(raw, empty)])
    assert (states[0]["State"], states[0]["Error"], states[0]["Results"]) == ("FAILURE", "division by zero", [])
    assert (states[1]["State"], states[1]["Results"]) == ("SUCCESS", [])


def test_a_revoked_task_reads_in_go_as_a_failure_and_here_as_revoked(
    go: GoProgram, backend: GoRedisBackend, raw: redis.Redis
) -> None:
    uuid = f"task_{unique_name()}"
    backend.set(TaskResult(uuid, TaskState.REVOKED, "slow", None, "not wanted"))
    [state] = go.read_states([_stored(raw, uuid)])
    assert (state["State"], state["Error"]) == ("FAILURE", "revoked: not wanted")  # final for Go's AsyncResult
    stored = backend.get(uuid)
    assert stored is not None and (stored.state, stored.error) == (TaskState.REVOKED, "not wanted")


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([{"Type": "int64", "Value": 42}], 42),
        ([{"Type": "float64", "Value": 1}], 1.0),
        ([{"Type": "[]uint8", "Value": "AP8="}], b"\x00\xff"),
        ([{"Type": "[]string", "Value": ["x", "y"]}], ("x", "y")),
        ([], None),
        ([{"Type": "int64", "Value": 1}, {"Type": "string", "Value": "two"}], (1, "two")),
    ],
)
def test_a_result_go_stored_is_read_here(
    go: GoProgram, backend: GoRedisBackend, raw: redis.Redis, results: list[dict[str, object]], expected: object
) -> None:
    uuid = f"task_{unique_name()}"
    [document] = go._run("writestate", [json.dumps({"TaskUUID": uuid, "TaskName": "go_task", "State": "SUCCESS",
                                                    "Results": results}).encode()])
    raw.set(uuid, json.dumps(document), ex=600)
    stored = backend.get(uuid)
    assert stored is not None
    assert (stored.state, stored.name, stored.result) == (TaskState.SUCCESS, "go_task", expected)
    assert type(stored.result) is type(expected)


def test_group_meta_written_here_is_read_by_go(go: GoProgram, backend: GoRedisBackend, raw: redis.Redis) -> None:
    group = f"group_{unique_name()}"
    backend.group_start(group, ["task_a", "task_b"])
    [meta] = go.read_groups([_stored(raw, group)])
    assert (meta["GroupUUID"], meta["TaskUUIDs"], meta["ChordTriggered"]) == (group, ["task_a", "task_b"], False)


def test_a_chord_fires_exactly_once_when_go_and_python_finish_its_members_together(
    go: GoProgram, backend: GoRedisBackend, redis_url: str
) -> None:
    chords, members = 20, 4
    groups = [f"group_{unique_name()}" for _ in range(chords)]
    uuids = {g: [f"task_{unique_name()}" for _ in range(members)] for g in groups}
    for g in groups:
        backend.group_start(g, uuids[g])
        backend.set_many([TaskResult(u, TaskState.PENDING, "m") for u in uuids[g]])  # as App and Go's SendGroup do
    fired: dict[str, list[tuple[str, list[object]]]] = {g: [] for g in groups}
    lock = threading.Lock()
    # Even members finish in Go, odd ones here, all chords at once.
    go_jobs = [json.dumps({**_go_redis(redis_url), "TaskUUID": u, "TaskName": "m", "GroupUUID": g,
                           "Results": [{"Type": "int64", "Value": i}]}).encode()
               for g in groups for i, u in enumerate(uuids[g]) if i % 2 == 0]

    def python_members() -> None:
        for g in groups:
            for i, u in enumerate(uuids[g]):
                if i % 2:
                    results = backend.group_add_result(g, u, i)
                    if results is not None:
                        with lock:
                            fired[g].append(("python", list[object](results)))

    thread = threading.Thread(target=python_members)
    thread.start()
    outcomes = [go._run("member", [job])[0] for job in go_jobs[: len(go_jobs) // 2]]
    outcomes += go._run("member", go_jobs[len(go_jobs) // 2:])
    thread.join(TIMEOUT)
    for job, outcome in zip(go_jobs, outcomes, strict=True):
        assert outcome["ok"], outcome
        if outcome["triggered"]:
            fired[json.loads(job)["GroupUUID"]].append(("go", [a["Value"] for a in outcome["appended"]]))
    assert {g: len(f) for g, f in fired.items()} == {g: 1 for g in groups}
    for g in groups:
        assert fired[g][0][1] == [0, 1, 2, 3]


def test_a_chord_sent_from_go_fires_its_callback_on_python_workers_once(
    go: GoProgram, tmp_path: Path, redis_url: str
) -> None:
    config: Config = amqp_config(tmp_path).replace(result_backend=redis_url, wire_format="go")
    group = f"group_{unique_name()}"
    callback = f"task_{unique_name()}"
    members = [f"task_{unique_name()}" for _ in range(3)]
    with App(config) as app:
        runs: list[float] = []

        @app.task(name="square")
        def square(x: int) -> int:
            return x * x

        @app.task(name="collect")
        def collect(*args: Any) -> str:
            runs.append(time.time())
            return ",".join(map(str, args))

        app.broker.declare([config.default_queue])
        # Go's SendChord: InitGroup writes the GroupMeta, then each member is published.
        [meta] = go.read_groups([json.dumps({"GroupUUID": group, "TaskUUIDs": members,
                                             "CreatedAt": "2030-01-01T00:00:00Z"}).encode()])
        assert isinstance(app.backend, GoRedisBackend)
        raw = redis.Redis.from_url(redis_url)
        raw.set(group, json.dumps(meta), ex=600)
        raw.close()
        chord_callback = {"UUID": callback, "Name": "collect", "Args": [{"Name": "", "Type": "string", "Value": "sq"}]}
        bodies = go.encode([{"UUID": u, "Name": "square", "RoutingKey": config.binding_key, "GroupUUID": group,
                             "GroupTaskCount": 3, "Args": [{"Name": "", "Type": "int64", "Value": i + 2}],
                             "ChordCallback": chord_callback} for i, u in enumerate(members)])
        for body in bodies:
            app.broker.publish(config.default_queue, body)
        with running(app, concurrency=3):
            assert app.result(callback).get(timeout=TIMEOUT) == "sq,4,9,16"  # Go's order: own args, then results
            time.sleep(0.5)
        assert len(runs) == 1


def test_a_python_chord_in_go_mode_writes_go_s_group_meta_and_fires_once(tmp_path: Path, redis_url: str) -> None:
    config = amqp_config(tmp_path).replace(result_backend=redis_url, wire_format="go")
    with App(config) as app:
        app.register_task("double", lambda x: x * 2)
        app.register_task("total", lambda *xs: sum(xs))
        work = chord([Signature("double", [i]) for i in range(5)], Signature("total", [100]))
        with running(app, concurrency=4):
            assert app.send_task(work).get(timeout=TIMEOUT) == 100 + 2 * (0 + 1 + 2 + 3 + 4)


def test_a_group_sent_from_go_runs_here_and_go_reads_every_member_s_state(
    go: GoProgram, tmp_path: Path, redis_url: str
) -> None:
    config: Config = amqp_config(tmp_path).replace(result_backend=redis_url, wire_format="go")
    group = f"group_{unique_name()}"
    members = [f"task_{unique_name()}" for _ in range(3)]
    with App(config) as app:
        app.register_task("halve", lambda x: x / 2)
        app.broker.declare([config.default_queue])
        [meta] = go.read_groups([json.dumps({"GroupUUID": group, "TaskUUIDs": members,
                                             "CreatedAt": "2030-01-01T00:00:00Z"}).encode()])
        raw = redis.Redis.from_url(redis_url)
        try:
            raw.set(group, json.dumps(meta), ex=600)
            bodies = go.encode([{"UUID": u, "Name": "halve", "RoutingKey": config.binding_key, "GroupUUID": group,
                                 "GroupTaskCount": 3, "Args": [{"Name": "", "Type": "int64", "Value": 2 * i + 1}]}
                                for i, u in enumerate(members)])
            for body in bodies:
                app.broker.publish(config.default_queue, body)
            with running(app, concurrency=3):
                assert [app.result(u).get(timeout=TIMEOUT) for u in members] == [0.5, 1.5, 2.5]
            states = go.read_states([_stored(raw, u) for u in members])
        finally:
            raw.close()
    assert [(s["State"], s["TaskName"], s["Results"]) for s in states] == [
        ("SUCCESS", "halve", [{"Type": "float64", "GoType": "float64", "Value": v}]) for v in (0.5, 1.5, 2.5)
    ]


def test_a_chord_sent_here_lets_a_go_worker_check_the_group_before_the_other_members_ran(
    go: GoProgram, tmp_path: Path, redis_url: str
) -> None:
    """Go's group check reads every member's state and fails on one with none, so sending a group
    in Go's layout writes each member PENDING first (with its task name), as Go's SendGroup does: a
    Go worker that finishes the first member then sees an incomplete group, and the chord fires
    once when the last member finishes here."""
    config: Config = amqp_config(tmp_path).replace(result_backend=redis_url, wire_format="go")
    go_queue = f"{config.default_queue}-go"
    forget_at_exit(config.broker_url, config.exchange, (go_queue,))
    with App(config) as app:
        app.register_task("double", lambda x: x * 2)
        app.register_task("total", lambda *xs: sum(xs))
        members = [Signature("double", [0], routing_key=go_queue), Signature("double", [1]), Signature("double", [2])]
        work = chord(members, Signature("total", [100]))
        handle = app.send_task(work)
        raw = redis.Redis.from_url(redis_url)
        try:
            pending = go.read_states([_stored(raw, m.uuid) for m in members])
        finally:
            raw.close()
        assert [(s["State"], s["TaskName"]) for s in pending] == [("PENDING", "double")] * 3
        # A Go worker consuming go_queue runs the first member before the others ran.
        [outcome] = go._run("member", [json.dumps({**_go_redis(redis_url), "TaskUUID": members[0].uuid,
                                                   "TaskName": "double", "GroupUUID": work.group.group_uuid,
                                                   "Results": [{"Type": "int64", "Value": 0}]}).encode()])
        assert outcome == {"ok": True, "triggered": False, "completed": False}
        with running(app):
            assert handle.get(timeout=TIMEOUT) == 100 + 0 + 2 + 4
