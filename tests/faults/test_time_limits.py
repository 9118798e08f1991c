"""Issue: a task stuck in time.sleep(10**6) kept its lease renewed for ever, was never failed, and
blocked shutdown until a second signal. Now ``soft_time_limit`` raises ``SoftTimeLimitExceeded`` in
the task and ``time_limit`` gives it up: FAILURE (``TimeLimitExceeded``), error callbacks sent, the
message acknowledged, and its thread replaced (threads) or its process replaced (worker processes)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from machinery import AsyncResult, Signature, TaskFailed, TaskState
from machinery.timelimits import SOFT_TIME_LIMIT_HEADER, TIME_LIMIT_HEADER, TimeLimits
from tests.faults.support import T, fault_app_on, start_worker, stop_worker
from tests.support.waiting import eventually
from tests.support.workers import running


def test_limits_travel_in_the_signature_headers_and_override_the_tasks() -> None:
    sig = Signature("sleep", [1]).with_time_limits(time_limit=5, soft_time_limit=2.5)
    assert sig.headers[TIME_LIMIT_HEADER] == 5.0
    assert sig.headers[SOFT_TIME_LIMIT_HEADER] == 2.5
    assert TimeLimits(soft=1.0, hard=9.0).overridden_by(sig.headers) == TimeLimits(2.5, 5.0)
    assert TimeLimits(hard=9.0).overridden_by({TIME_LIMIT_HEADER: "nonsense"}) == TimeLimits(hard=9.0)
    with pytest.raises(ValueError, match="time_limit"):
        Signature("sleep", [1]).with_time_limits(time_limit=-1)


def test_a_soft_limit_is_raised_inside_the_task(tmp_path: Path) -> None:
    app = fault_app_on(tmp_path)
    with running(app, concurrency=2):
        tidied = app.send_task(Signature("tidy", [30]).with_time_limits(soft_time_limit=0.3))
        assert tidied.get(timeout=T) == "tidied up"
        uncaught = app.send_task(Signature("spin", [30]).with_time_limits(soft_time_limit=0.3))
        with pytest.raises(TaskFailed, match="SoftTimeLimitExceeded"):
            uncaught.get(timeout=T)
        in_time = app.send_task(Signature("spin", [0.05]).with_time_limits(soft_time_limit=5, time_limit=10))
        assert in_time.get(timeout=T) == "done"
    app.close()


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_task_past_its_hard_limit_is_failed_and_its_thread_replaced(tmp_path: Path, concurrency: int) -> None:
    app = fault_app_on(tmp_path, visibility_timeout=0.6)
    callback = Signature("echo", ["cb"])
    with running(app, concurrency=concurrency) as worker:
        started = time.monotonic()
        hung = app.send_task(Signature("sleep", [10**6]).with_time_limits(time_limit=0.5).link_error(callback))
        with pytest.raises(TaskFailed, match="TimeLimitExceeded") as caught:
            hung.get(timeout=T)
        assert time.monotonic() - started < 10
        assert "0.5s" in caught.value.error
        assert app.result(callback.uuid).get(timeout=T) == [caught.value.error, "cb"]
        # The message was acknowledged (its lease is no longer renewed: nothing in flight, no rerun).
        queue = app.config.default_queue
        assert eventually(lambda: app.broker.depth(queue).in_flight == 0, timeout=T)
        # A new thread took the abandoned one's place.
        results = app.send_tasks([Signature("add", [i, 1]) for i in range(concurrency * 3)])
        assert [r.get(timeout=T) for r in results] == [i + 1.0 for i in range(concurrency * 3)]
        # The registered limit (stuck: 1 s) applies when the signature sets none.
        with pytest.raises(TaskFailed, match="TimeLimitExceeded"):
            app.send_task(Signature("stuck", [])).get(timeout=T)
        stop_started = time.monotonic()
        worker.stop(wait=True, timeout=T)
        assert worker._stopped.is_set()
        assert time.monotonic() - stop_started < 5  # shutdown did not wait for the stuck threads
    time.sleep(1.5)  # past two leases: the given-up message must not come back
    depth = app.broker.depth(queue)
    assert (depth.ready, depth.in_flight, depth.dead) == (0, 0, 0)
    assert hung.state is TaskState.FAILURE
    app.close()


@pytest.mark.slow
def test_one_signal_stops_a_worker_process_whose_task_hangs(tmp_path: Path) -> None:
    """The issue's case: the hung task is failed at its limit and one SIGTERM stops the worker."""
    app = fault_app_on(tmp_path)
    proc = start_worker(app.config, "-c", "1")
    try:
        hung = app.send_task(Signature("sleep", [10**6]).with_time_limits(time_limit=1))
        assert eventually(lambda: hung.state is TaskState.STARTED, timeout=T)
        code, out = stop_worker(proc, timeout=15)
        assert code == 0, out
        with pytest.raises(TaskFailed, match="TimeLimitExceeded"):
            hung.get(timeout=1)
    finally:
        stop_worker(proc)
        app.close()


def hung_error(result: AsyncResult) -> str:
    with pytest.raises(TaskFailed) as caught:
        result.get(timeout=0)
    return caught.value.error


@pytest.mark.slow
def test_with_worker_processes_the_process_of_a_hung_task_is_replaced(tmp_path: Path) -> None:
    app = fault_app_on(tmp_path)
    proc = start_worker(app.config, "-c", "2", "-P", "2")
    callback = Signature("echo", ["cb"])
    try:
        hung = app.send_task(Signature("sleep", [10**6]).with_time_limits(time_limit=1).link_error(callback))
        with pytest.raises(TaskFailed, match="TimeLimitExceeded"):
            hung.get(timeout=T)
        assert app.result(callback.uuid).get(timeout=T) == [hung_error(hung), "cb"]
        results = app.send_tasks([Signature("add", [i, 1]) for i in range(8)])
        assert [r.get(timeout=T) for r in results] == [i + 1.0 for i in range(8)]
        again = app.send_task(Signature("stuck", []))
        with pytest.raises(TaskFailed, match="TimeLimitExceeded"):
            again.get(timeout=T)
        assert app.send_task(Signature("add", [2, 2])).get(timeout=T) == 4
    finally:
        code, out = stop_worker(proc)
        app.close()
    assert code == 0, out
    assert out.count("stopping this process to be replaced") == 2, out
    assert "stopped to be replaced" in out, out
