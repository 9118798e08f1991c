"""The result backend contract: every backend in ``factories.BACKEND_FACTORIES`` must pass all of it."""

from __future__ import annotations

import threading
import time

import pytest

from machinery.jsonvalues import FrozenDict, freeze
from machinery.states import TaskResult, TaskState
from tests.transport.conftest import MakeBackend
from tests.transport.factories import BackendFactory


def test_nothing_is_stored_for_an_unknown_task(make_backend: MakeBackend, token: str) -> None:
    assert make_backend().get(f"unknown-{token}") is None


def test_a_stored_state_is_read_back(make_backend: MakeBackend, token: str) -> None:
    backend = make_backend()
    backend.set(TaskResult(token, TaskState.SUCCESS, name="add", result=3, updated_at=12.5))
    assert backend.get(token) == TaskResult(token, TaskState.SUCCESS, name="add", result=3, updated_at=12.5)


def test_the_latest_state_replaces_the_earlier_one(make_backend: MakeBackend, token: str) -> None:
    backend = make_backend()
    backend.set(TaskResult(token, TaskState.STARTED, name="add"))
    backend.set(TaskResult(token, TaskState.FAILURE, name="add", error="boom"))
    stored = backend.get(token)
    assert stored is not None
    assert (stored.state, stored.error) == (TaskState.FAILURE, "boom")


def test_a_result_without_a_time_gets_the_time_it_was_stored(make_backend: MakeBackend, token: str) -> None:
    backend = make_backend()
    before = time.time()
    backend.set(TaskResult(token, TaskState.RECEIVED))
    stored = backend.get(token)
    assert stored is not None
    assert before - 1 <= stored.updated_at <= time.time() + 1


def test_result_values_come_back_frozen(make_backend: MakeBackend, token: str) -> None:
    backend = make_backend()
    value = freeze({"list": [1, 2.5, "x", None, True], "nested": {"a": [[]]}})
    backend.set(TaskResult(token, TaskState.SUCCESS, result=value))
    stored = backend.get(token)
    assert stored is not None
    assert stored.result == value
    assert isinstance(stored.result, FrozenDict)
    assert stored.result["list"] == (1, 2.5, "x", None, True)


def test_a_stored_state_is_seen_by_another_client(make_backend: MakeBackend, token: str) -> None:
    make_backend().set(TaskResult(token, TaskState.SUCCESS, result="shared"))
    stored = make_backend().get(token)
    assert stored is not None and stored.result == "shared"


def test_wait_returns_the_final_state_as_soon_as_it_is_stored(make_backend: MakeBackend, token: str) -> None:
    """Woken by the final ``set`` of another client, not at the waiter's next poll."""
    waiter, writer = make_backend(poll_interval=60.0), make_backend()
    writer.set(TaskResult(token, TaskState.STARTED))
    timer = threading.Timer(0.2, lambda: writer.set(TaskResult(token, TaskState.SUCCESS, result=42)))
    started = time.monotonic()
    timer.start()
    try:
        result = waiter.wait(token, 20.0)
    finally:
        timer.join()
    assert result is not None and result.state is TaskState.SUCCESS and result.result == 42
    assert time.monotonic() - started < 3.0


def test_wait_gives_the_latest_state_when_time_runs_out(make_backend: MakeBackend, token: str) -> None:
    backend = make_backend()
    backend.set(TaskResult(token, TaskState.STARTED))
    started = time.monotonic()
    result = backend.wait(token, 0.3)
    assert result is not None and result.state is TaskState.STARTED
    assert time.monotonic() - started >= 0.25


def test_wait_for_an_unknown_task_gives_none_at_the_timeout(make_backend: MakeBackend, token: str) -> None:
    assert make_backend().wait(token, 0.2) is None


def test_wait_for_an_already_final_state_returns_at_once(make_backend: MakeBackend, token: str) -> None:
    backend = make_backend()
    backend.set(TaskResult(token, TaskState.FAILURE, error="bad"))
    started = time.monotonic()
    result = backend.wait(token, 20.0)
    assert result is not None and result.error == "bad"
    assert time.monotonic() - started < 2.0


def test_a_result_expires_after_the_configured_time(make_backend: MakeBackend, token: str) -> None:
    backend = make_backend(expires_in=0.5)
    backend.set(TaskResult(token, TaskState.SUCCESS, result=1))
    assert backend.get(token) is not None
    time.sleep(0.8)
    assert backend.get(token) is None


def test_forget_drops_the_stored_state(make_backend: MakeBackend, token: str) -> None:
    backend = make_backend()
    backend.set(TaskResult(token, TaskState.SUCCESS))
    backend.forget(token)
    assert backend.get(token) is None


def test_a_group_gives_no_results_until_every_member_has_one(make_backend: MakeBackend, token: str) -> None:
    backend = make_backend()
    backend.group_start(token, ["a", "b", "c"])
    assert backend.group_add_result(token, "c", 3) is None
    assert backend.group_add_result(token, "a", 1) is None


def test_a_complete_group_gives_its_results_in_group_order(make_backend: MakeBackend, token: str) -> None:
    backend = make_backend()
    backend.group_start(token, ["a", "b", "c"])
    backend.group_add_result(token, "c", "third")
    backend.group_add_result(token, "a", freeze(["first"]))
    assert backend.group_add_result(token, "b", freeze({"second": 2})) == [("first",), freeze({"second": 2}), "third"]


def test_a_complete_group_gives_its_results_again_until_it_is_done(
    make_backend: MakeBackend, token: str, backend_factory: BackendFactory
) -> None:
    if not backend_factory.repeats_complete_groups:
        pytest.skip("Go's layout gives a complete group's results once (its ChordTriggered flag)")
    backend = make_backend()
    backend.group_start(token, ["a", "b"])
    backend.group_add_result(token, "a", 1)
    assert backend.group_add_result(token, "b", 2) == [1, 2]
    assert backend.group_add_result(token, "b", 2) == [1, 2]
    backend.group_done(token)
    assert backend.group_add_result(token, "b", 2) is None


def test_a_result_for_a_group_never_started_gives_none(make_backend: MakeBackend, token: str) -> None:
    assert make_backend().group_add_result(token, "a", 1) is None


def test_group_results_from_many_clients_complete_exactly_once(make_backend: MakeBackend, token: str) -> None:
    members = [f"m{i}" for i in range(20)]
    make_backend().group_start(token, members)
    clients = [make_backend() for _ in range(4)]
    completions: list[list[object]] = []
    lock = threading.Lock()

    def add(index: int) -> None:
        for member in members[index::4]:
            outcome = clients[index].group_add_result(token, member, member)
            if outcome is not None:
                with lock:
                    completions.append(list(outcome))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert completions == [list(members)]

