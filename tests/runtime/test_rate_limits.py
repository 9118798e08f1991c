"""Rate limits per task name: runs of a limited task are spaced by the limit across a worker's
threads and across workers sharing a result store, never early; a run that would wait long is given
back to the broker with a delay and runs later, never lost. (The achieved rate is measured by
``benchmarks/rate_limit.py``, not here: these tests only check lower bounds on spacing.)"""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from machinery import App, Config, Hook, Outcome, Signature, TaskCall, TaskState
from machinery.rate_limits import RateLimit, parse_rate_limit
from tests.support.waiting import TIMEOUT
from tests.support.workers import running


@pytest.mark.parametrize(("text", "per_second"), [("100/s", 100.0), ("10/m", 10 / 60), ("1000/h", 1000 / 3600),
                                                  (" 2.5 / s ", 2.5)])
def test_rate_limits_are_read_per_second_minute_or_hour(text: str, per_second: float) -> None:
    assert parse_rate_limit(text).per_second == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["", "100", "0/s", "-1/s", "10/d", "ten/s", "1/s/s"])
def test_a_bad_rate_limit_is_refused_at_registration(text: str) -> None:
    app = App(Config(broker_url="memory://rl-bad", result_backend="none"))
    with pytest.raises(ValueError, match="a rate limit is N/s, N/m or N/h"):
        app.register_task("t", lambda: None, rate_limit=text)
    assert "t" not in app.registry


class _Starts(Hook):
    """When each run of a task started, and how many runs were given back with a delay."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.delayed = 0

    def after_run(self, call: TaskCall, outcome: Outcome) -> None:
        if outcome.state is TaskState.PENDING:
            with self.lock:
                self.delayed += 1


def _limited(app: App, starts: list[float], rate: str) -> None:
    @app.task(rate_limit=rate)
    def tick(n: int) -> int:
        starts.append(time.monotonic())
        return n


def _spacing(starts: list[float]) -> float:
    ordered = sorted(starts)
    return min(b - a for a, b in itertools.pairwise(ordered))


def test_runs_are_spaced_by_the_limit_across_the_threads_of_a_worker(app: App) -> None:
    starts: list[float] = []
    _limited(app, starts, "8/s")
    with running(app, concurrency=4):
        results = [app.send_task(Signature("tick", [n])) for n in range(8)]
        assert [r.get(timeout=TIMEOUT) for r in results] == list(range(8))
    assert _spacing(starts) >= 1 / 8 - 0.04


def test_the_bucket_is_shared_by_workers_using_one_store(broker_config: Config) -> None:
    if broker_config.result_backend.startswith("memory://"):
        pytest.skip("a memory:// store is one process's own")
    starts: list[float] = []
    with App(broker_config) as first, App(broker_config) as second:
        _limited(first, starts, "6/s")
        _limited(second, starts, "6/s")
        with running(first, concurrency=3), running(second, concurrency=3):
            results = [first.send_task(Signature("tick", [n])) for n in range(9)]
            assert [r.get(timeout=TIMEOUT) for r in results] == list(range(9))
    assert len(starts) == 9
    assert _spacing(starts) >= 1 / 6 - 0.04


def test_a_run_that_would_wait_long_goes_back_to_the_broker_and_is_not_lost(app: App) -> None:
    starts: list[float] = []
    _limited(app, starts, "3/s")
    recorder = app.hooks.add(_Starts())
    assert isinstance(recorder, _Starts)
    with running(app, concurrency=4):
        results = [app.send_task(Signature("tick", [n])) for n in range(5)]
        assert sorted(int(str(r.get(timeout=TIMEOUT))) for r in results) == list(range(5))
    assert recorder.delayed >= 1
    assert len(starts) == 5
    assert _spacing(starts) >= 1 / 3 - 0.04


def test_a_limit_can_be_changed_and_removed(app: App) -> None:
    app.register_task("t", lambda: None, rate_limit="1/h")
    app.rate_limit("t", "5/s")
    app.rate_limit("u", RateLimit(2.0, "2/s"))
    limiter = next(h for h in app.hooks if type(h).__name__ == "RateLimiter")
    assert {k: v.text for k, v in limiter.limits.items()} == {"t": "5/s", "u": "2/s"}  # type: ignore[attr-defined]
    app.rate_limit("t", None)
    assert set(limiter.limits) == {"u"}  # type: ignore[attr-defined]
