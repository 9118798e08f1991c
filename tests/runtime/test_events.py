"""Task and worker events, published on each broker's event channel and tailed back: every event
counted against what ran, in order per task; heartbeats; the Monitor's picture."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from machinery import App, BrokerError, Hook, Signature, Skip, TaskCall, TaskFailed, chain
from machinery.events import (
    Event,
    EventChannel,
    EventEmitter,
    EventSubscription,
    MemoryEvents,
    Monitor,
    decode_event,
    open_channel,
)
from machinery.events.model import EventDecodeError, RunningTask, WorkerStatus, encode_event
from machinery.hooks import RunDecision
from tests.runtime.tasks import register_outcome_tasks
from tests.support.names import unique_name
from tests.support.waiting import TIMEOUT, eventually
from tests.support.workers import running


def collect(sub: EventSubscription, until: str, timeout: float = TIMEOUT) -> list[Event]:
    """Events read from ``sub`` up to and including the first of type ``until``."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for body in sub.read(0.2):
            events.append(decode_event(body))
            if events[-1].type == until:
                return events
    raise AssertionError(f"no {until} event within {timeout}s; got {[e.type for e in events]}")


def test_events_tell_what_happened_to_every_task(app: App) -> None:
    register_outcome_tasks(app)

    @app.task
    def vetoed() -> None:
        raise AssertionError("never runs")

    class Veto(Hook):
        def before_run(self, call: TaskCall) -> RunDecision | None:
            return Skip("not today") if call.signature.name == "vetoed" else None

    app.hooks.add(Veto())
    app.enable_events()
    channel = open_channel(app.config)
    sub = channel.subscribe()
    queue = app.config.default_queue
    try:
        with running(app, concurrency=2):
            sent = app.send_task(chain(Signature("add", [1, 1]), Signature("add", [5])))
            assert sent.get(timeout=TIMEOUT) == 7
            with pytest.raises(TaskFailed):
                app.send_task(Signature("boom", [])).get(timeout=TIMEOUT)
            with pytest.raises(TaskFailed):
                app.send_task(Signature("flaky", [], retry_count=1)).get(timeout=TIMEOUT)
            with pytest.raises(TaskFailed, match="not today"):
                app.send_task(Signature("vetoed", [])).get(timeout=TIMEOUT)
            app.broker.publish(queue, b"\xff not an event")
            assert eventually(lambda: app.broker.depth(queue).dead == 1)
        app.close()  # flushes what is buffered
        events = collect(sub, "worker-offline")
    finally:
        sub.close()
        channel.close()

    def types(uuid: str) -> list[str]:
        return [e.type for e in events if e.uuid == uuid]

    head, tail = sent.steps
    run = ["task-received", "task-started"]
    assert types(head.task_uuid) == ["task-sent", *run, "task-succeeded"]
    # The follow-up is sent by the worker while the head runs.
    assert types(tail.task_uuid) == ["task-sent", *run, "task-succeeded"]
    by_type: dict[str, list[Event]] = {}
    for e in events:
        by_type.setdefault(e.type, []).append(e)
    assert len(by_type["task-sent"]) == 6  # 2 chain steps, boom, flaky and its retry, vetoed
    failed = {e.name: e for e in by_type["task-failed"]}  # in either order: see test_observe_cli
    assert sorted(failed) == ["boom", "flaky"]
    assert failed["boom"].error == "boom"
    [retried] = by_type["task-retried"]
    assert retried.name == "flaky" and retried.delay == 0.01 and retried.duration is not None
    [revoked] = by_type["task-revoked"]
    assert revoked.name == "vetoed" and revoked.error == "not today" and revoked.duration is None
    [dead] = by_type["task-dead-lettered"]
    assert dead.queue == queue and "undecodable" in dead.error
    succeeded = by_type["task-succeeded"]
    assert all(e.duration is not None and e.duration >= 0 for e in succeeded)
    assert all(e.queue == queue for e in succeeded)
    assert events[0].type == "worker-online" and events[-1].type == "worker-offline"
    offline = events[-1].worker
    assert offline is not None and offline.queues == (queue,) and offline.concurrency == 2
    assert offline.processed == 5 and offline.running == ()  # 2 adds, boom, flaky twice (vetoed never ran)
    workers = {e.source for e in events if e.type.startswith("task-") and e.type != "task-sent"}
    assert workers == {events[0].source}


def test_heartbeats_carry_the_running_tasks(app: App) -> None:
    @app.task
    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    app.config = app.config.replace(heartbeat_interval=0.2)
    emitter = app.enable_events()
    channel = open_channel(app.config)
    sub = channel.subscribe()
    monitor = Monitor()
    try:
        with running(app, concurrency=1) as worker:
            result = app.send_task(Signature("nap", [1.0]))
            deadline = time.monotonic() + TIMEOUT
            seen_running = False
            while not seen_running and time.monotonic() < deadline:
                for body in sub.read(0.2):
                    event = decode_event(body)
                    monitor.apply(event)
                    if event.type == "worker-heartbeat" and event.worker is not None:
                        seen_running = [r.uuid for r in event.worker.running] == [result.task_uuid]
            assert seen_running
            [live] = monitor.workers()
            assert live.queues == tuple(worker.queues)
            assert [r.name for r in live.running] == ["nap"]
            assert monitor.task(result.task_uuid) is not None
            result.get(timeout=TIMEOUT)
        emitter.flush()
        for event in collect(sub, "worker-offline"):
            monitor.apply(event)
    finally:
        sub.close()
        channel.close()
    assert monitor.workers() == []  # it went offline
    [gone] = monitor.workers(include_gone=True)
    assert gone.processed == 1 and gone.succeeded == 1
    view = monitor.task(result.task_uuid)
    assert view is not None and view.state == "SUCCESS" and view.duration is not None and view.duration >= 1.0
    assert sum(s for _, s, _ in monitor.throughput()) == 1


def test_events_round_trip_and_bad_ones_are_refused() -> None:
    status = WorkerStatus(("q",), 4, 5.0, (RunningTask("u", "add", 1.5),), 7)
    for event in (
        Event("task-succeeded", 1.0, "h.1", "u", "add", "q", duration=0.25),
        Event("task-retried", 2.0, "h.1", "u", "add", "q", duration=0.1, error="x", delay=3.0),
        Event("worker-heartbeat", 3.0, "h.1", worker=status),
    ):
        assert decode_event(encode_event(event)) == event
    for bad in (b"[]", b"{", b'{"type":"nope","timestamp":1}', b'{"type":"task-sent"}',
                b'{"type":"worker-online","timestamp":1,"source":"h"}',
                b'{"type":"task-sent","timestamp":1,"uuid":5}',
                b'{"type":"worker-heartbeat","timestamp":1,"worker":{"queues":["q"],"concurrency":true,'
                b'"heartbeat_interval":1}}'):
        with pytest.raises(EventDecodeError):
            decode_event(bad)


def test_the_monitor_counts_throughput_in_buckets() -> None:
    monitor = Monitor(window=30.0, bucket=10.0)
    for t, kind in ((100.0, "task-succeeded"), (101.0, "task-succeeded"), (115.0, "task-failed"),
                    (50.0, "task-succeeded")):
        monitor.apply(Event(kind, t, "w", f"u{t}", "add"))
    assert monitor.throughput(now=125.0) == [(100.0, 2, 0), (110.0, 0, 1), (120.0, 0, 0)]
    assert [t.state for t in monitor.tasks()] == ["FAILURE", "SUCCESS", "SUCCESS", "SUCCESS"]


def test_a_channel_that_fails_costs_the_tasks_nothing(app: App, caplog: pytest.LogCaptureFixture) -> None:
    @app.task
    def add(a: float, b: float) -> float:
        return a + b

    attempts: list[int] = []
    working = MemoryEvents(unique_name("events"))

    def flaky_channel() -> EventChannel:
        attempts.append(1)
        if len(attempts) == 1:
            raise BrokerError("the event channel is away")
        return working

    sub = working.subscribe()
    emitter = EventEmitter(flaky_channel, default_queue=app.config.default_queue)
    app.hooks.add(emitter)
    with caplog.at_level(logging.WARNING, logger="machinery.events"), running(app, concurrency=1):
        assert app.send_task(Signature("add", [1, 2])).get(timeout=TIMEOUT) == 3
        emitter.flush()  # the first batch is dropped: the channel could not be opened
        assert app.send_task(Signature("add", [2, 2])).get(timeout=TIMEOUT) == 4
        emitter.flush()
    assert "events dropped: the event channel is away" in caplog.text
    types = [decode_event(b).type for b in sub.read(1.0)]
    assert "task-succeeded" in types and emitter.published >= 4


def test_the_sqlite_channel_keeps_a_bounded_number_of_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from machinery.events import sqlite_channel

    monkeypatch.setattr(sqlite_channel, "KEEP_ROWS", 5)
    monkeypatch.setattr(sqlite_channel, "_TRIM_EVERY", 0.0)
    channel = sqlite_channel.SQLiteEvents(str(tmp_path / "events.sqlite3"))
    try:
        for i in range(3):
            channel.publish([Event("task-sent", float(i), "h.1", f"u{i}.{j}", "add") for j in range(4)])
        sub = channel.subscribe(history=1e9)
        kept = [decode_event(b).uuid for b in sub.read(0.1)]
    finally:
        channel.close()
    assert kept == ["u1.3", "u2.0", "u2.1", "u2.2", "u2.3"]
