"""The watchdog itself: deadlines of finished calls do not pile up, and a call that finishes just
as its limit passes is either finished or abandoned, never hit by an exception afterwards."""

from __future__ import annotations

import time

import pytest

from machinery import SoftTimeLimitExceeded
from machinery.timelimits import TimeLimits
from machinery.watchdog import Abandoned, Watch, Watchdog


def test_finished_calls_do_not_pile_up_in_the_heap() -> None:
    dog = Watchdog(lambda w: None)
    try:
        for _ in range(20_000):
            dog.watch(TimeLimits(soft=3600.0, hard=7200.0), None).finish()
        assert len(dog._heap) <= 2 * 1024 + 2
    finally:
        dog.stop()


def test_calls_ending_at_their_limits_are_settled_one_way_only() -> None:
    abandoned: list[Watch] = []
    dog = Watchdog(abandoned.append)
    outcomes = {"finished": 0, "soft": 0, "abandoned": 0}
    try:
        for i in range(150):
            limit = 0.02
            try:
                try:
                    watch = dog.watch(TimeLimits(soft=limit, hard=limit * 4), i)
                    # Around the soft deadline, where the call's end and the watchdog race, and up to
                    # twice past it: more than the interpreter's 5 ms switch interval, which a watchdog
                    # thread waiting for the GIL may need before its exception can land.
                    deadline = time.monotonic() + limit * (0.8 + (i % 9) * 0.15)
                    while time.monotonic() < deadline:
                        pass
                finally:
                    watch.finish()
                outcomes["finished"] += 1
            except SoftTimeLimitExceeded:
                outcomes["soft"] += 1
            except Abandoned:
                outcomes["abandoned"] += 1
            time.sleep(0.002)  # an exception withdrawn late would land here and fail the test
    finally:
        dog.stop()
    assert sum(outcomes.values()) == 150
    # Which way each ends depends on the scheduler (a loaded machine wakes the watchdog late);
    # that limits fire at all does not.
    assert outcomes["soft"] + outcomes["abandoned"] > 0
    time.sleep(0.1)
    assert len(abandoned) == outcomes["abandoned"]


def test_a_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TimeLimits(hard=0)
    with pytest.raises(ValueError):
        TimeLimits(soft=float("inf"))
