"""Periodic work: schedules (cron in a time zone across DST, epoch-aligned intervals), fresh UUIDs
for each run, the config's ``periodic`` section, and ``Beat`` sending each due run exactly once with
several schedulers - in threads here; ``test_beat_processes.py`` kills one with SIGKILL."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from machinery import App, ConfigError, Signature, chain, chord, group
from machinery.beat import PERIODIC_HEADER, Beat
from machinery.periodic import Schedule, fresh, from_config, schedule
from machinery.signature import Signature as Sig
from machinery.workflows import Chain, Chord, Group
from tests.runtime.brokers import sqlite_config
from tests.support.waiting import eventually

PARIS = ZoneInfo("Europe/Paris")


def _ts(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS).timestamp()


def test_an_interval_is_aligned_to_the_epoch() -> None:
    every = Schedule(every=60)
    ticks = every.after(1_000_030.0)
    assert [next(ticks), next(ticks)] == [1_000_080.0, 1_000_140.0]
    assert every.latest(1_000_030.0) == 1_000_020.0


def test_a_daily_cron_runs_once_on_each_dst_change_in_its_time_zone() -> None:
    daily = Schedule(cron="30 2 * * *", timezone="Europe/Paris")
    spring = daily.after(_ts(2026, 3, 28, 12, 0))
    assert [datetime.fromtimestamp(next(spring), PARIS).strftime("%m-%d %H:%M") for _ in range(3)] == [
        "03-29 03:00", "03-30 02:30", "03-31 02:30"]  # 02:30 does not exist on 03-29
    autumn = daily.after(_ts(2026, 10, 24, 12, 0))
    runs = [next(autumn) for _ in range(3)]
    assert [datetime.fromtimestamp(t, PARIS).strftime("%m-%d %H:%M") for t in runs] == [
        "10-25 02:30", "10-26 02:30", "10-27 02:30"]  # 02:30 happens twice on 10-25: one run
    assert runs[1] - runs[0] == 25 * 3600
    assert daily.latest(_ts(2026, 3, 30, 12, 0)) == _ts(2026, 3, 30, 2, 30)


@pytest.mark.parametrize(("spec", "message"), [
    ("61 * * * *", "bad cron expression"), ("", "cron expression or an interval"),
    (-5, "every must be"), ("* * * * *", "unknown time zone"),
])
def test_a_bad_schedule_is_refused(spec: str | float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        schedule(spec, "Mars/Olympus" if message == "unknown time zone" else "UTC")


def test_each_run_sends_fresh_uuids_keeping_the_shape() -> None:
    a, b, c = Sig("add", [1]), Sig("add", [2]), Sig("add", [])
    single = fresh(a, {"k": "v"})
    assert isinstance(single, Sig) and single.uuid != a.uuid and single.headers["k"] == "v"
    steps = fresh(chain(a, b))
    assert isinstance(steps, Chain) and steps.steps[0].uuid != a.uuid
    assert steps.head.on_success[0].uuid == steps.steps[1].uuid != b.uuid
    grp = fresh(group(a, b))
    original = group(a, b)
    assert isinstance(grp, Group) and grp.group_uuid != original.group_uuid
    made = chord([a, b], c)
    again = fresh(made)
    assert isinstance(again, Chord) and again.callback.uuid != c.uuid
    assert {m.chord_callback.uuid for m in again.group.tasks if m.chord_callback} == {again.callback.uuid}


def test_the_config_section_describes_signatures_and_chains(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path).replace(periodic={
        "report": {"cron": "0 3 * * *", "timezone": "Europe/Paris", "task": "report", "args": [2026]},
        "pipeline": {"every": 30, "chain": [{"task": "add", "args": [1, 1]}, {"task": "multiply", "args": [2]}]},
    })
    report, pipeline = from_config(config.periodic)
    assert (report.name, str(report.schedule)) == ("report", "cron '0 3 * * *' (Europe/Paris)")
    assert isinstance(report.work, Sig) and report.work.args == (2026,)
    assert isinstance(pipeline.work, Chain) and [s.name for s in pipeline.work.steps] == ["add", "multiply"]


@pytest.mark.parametrize(("entry", "key"), [
    ({"every": 5}, "periodic.x"), ({"cron": "bad", "task": "t"}, "periodic.x"),
    ({"every": 5, "task": "t", "colour": "red"}, "periodic.x"),
    ({"every": 5, "chain": [{"args": [1]}]}, "periodic.x.chain[0]"),
])
def test_a_bad_config_entry_names_itself(entry: dict[str, object], key: str, tmp_path: Path) -> None:
    config = sqlite_config(tmp_path).replace(periodic={"x": entry})
    with pytest.raises(ConfigError, match=rf"config {__import__('re').escape(key)}"):
        from_config(config.periodic)


def _due_times(app: App) -> list[str]:
    """The due times of the periodic runs waiting in the app's queue (read and acknowledged)."""
    seen = []
    while deliveries := app.broker.fetch([app.config.default_queue], 100, 0.2):
        for d in deliveries:
            from machinery._speedups import decode

            seen.append(str(decode(d.body).headers[PERIODIC_HEADER]))
        app.broker.ack_many(deliveries)
    return seen


def test_two_schedulers_send_each_due_run_once(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    with App(config) as first, App(config) as second:
        for app in (first, second):
            app.periodic(0.3, Signature("tick", []), name="tick")
        beats = [Beat(first, first.periodic_entries(), tick=0.05), Beat(second, second.periodic_entries(), tick=0.05)]
        running = [beat.start() for beat in beats]
        try:
            assert eventually(lambda: sum(b.sent for b in beats) >= 8)
        finally:
            for thread, stop in running:
                stop.set()
                thread.join(5)
        runs = _due_times(first)
        assert len(runs) == sum(b.sent for b in beats)
        assert len(set(runs)) == len(runs), runs
        assert all(b.sent > 0 for b in beats) or len(runs) >= 8


def test_the_app_refuses_two_entries_of_one_name(tmp_path: Path) -> None:
    app = App(sqlite_config(tmp_path))
    app.periodic("* * * * *", Signature("t", []), name="t")
    with pytest.raises(ValueError, match="exists already"):
        app.periodic(5, Signature("t", []), name="t")
    app.close()


def test_missed_runs_are_sent_once_not_as_a_burst(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    with App(config) as app:
        app.periodic(0.5, Signature("tick", []), name="tick")
        beat = Beat(app, app.periodic_entries(), tick=0.05)
        thread, stop = beat.start()
        assert eventually(lambda: beat.sent >= 1)
        stop.set()
        thread.join(5)
        assert len(_due_times(app)) == beat.sent
        threading.Event().wait(2.0)  # four due times pass with no scheduler
        restarted = time.time()
        again = Beat(app, app.periodic_entries(), tick=0.05)
        thread, stop = again.start()
        assert eventually(lambda: again.sent >= 1)
        stop.set()
        thread.join(5)
        missed = [due for due in (_when(run) for run in _due_times(app)) if due <= restarted]
        assert len(missed) == 1
        assert restarted - 0.5 < missed[0] <= restarted  # the latest one


def _when(run: str) -> float:
    return datetime.fromisoformat(run.partition("@")[2]).timestamp()
