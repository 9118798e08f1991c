"""RECEIVED/STARTED are written only for deliveries held longer than a moment, and never over a
final state."""

from __future__ import annotations

import threading
import time

from machinery import Signature, TaskResult, TaskState, encode
from machinery.backends.memory import MemoryBackend
from machinery.brokers.base import Delivery
from machinery.progress import ProgressTracker


class Recording(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.states: list[TaskState] = []

    def set(self, result: TaskResult) -> None:
        self.states.append(result.state)
        super().set(result)


def delivery(sig: Signature, tag: int = 1) -> Delivery:
    return Delivery("q", encode(sig), tag)


def test_quick_task_gets_no_progress_writes() -> None:
    backend = Recording()
    tracker = ProgressTracker(backend, after=0.05)
    sig = Signature("add", [1])
    d = delivery(sig)
    tracker.received([d])
    tracker.started(d, sig)
    tracker.finish(d)
    assert tracker.tick(now=time.monotonic() + 10) == 0
    assert backend.states == []


def test_waiting_message_is_received_then_running_task_is_started() -> None:
    backend = Recording()
    tracker = ProgressTracker(backend, after=0.05)
    sig = Signature("add", [1])
    d = delivery(sig)
    tracker.received([d])
    assert tracker.tick(now=time.monotonic() + 1) == 1
    assert backend.get(sig.uuid) is not None
    tracker.started(d, sig)
    assert tracker.tick() == 0  # just started
    assert tracker.tick(now=time.monotonic() + 1) == 1
    assert tracker.tick(now=time.monotonic() + 2) == 0  # written once
    assert backend.states == [TaskState.RECEIVED, TaskState.STARTED]


def test_finished_task_is_never_marked_started_afterwards() -> None:
    backend = Recording()
    tracker = ProgressTracker(backend, after=0.0)
    sig = Signature("add", [1])
    d = delivery(sig)
    tracker.started(d, sig)
    tracker.finish(d)
    backend.set(TaskResult(sig.uuid, TaskState.SUCCESS, "add", 1.0))
    tracker.tick(now=time.monotonic() + 1)
    stored = backend.get(sig.uuid)
    assert stored is not None and stored.state is TaskState.SUCCESS


def test_given_back_message_reads_pending_again() -> None:
    backend = Recording()
    tracker = ProgressTracker(backend, after=0.05)
    sig = Signature("add", [1])
    d = delivery(sig)
    tracker.received([d])
    tracker.tick(now=time.monotonic() + 1)
    tracker.give_back(d)
    assert backend.get(sig.uuid) is None


def test_finish_waits_for_a_write_in_flight_and_stops_later_ones() -> None:
    class Slow(Recording):
        def __init__(self) -> None:
            super().__init__()
            self.entered = threading.Event()
            self.release = threading.Event()

        def set(self, result: TaskResult) -> None:
            self.entered.set()
            assert self.release.wait(5)
            super().set(result)

    backend = Slow()
    tracker = ProgressTracker(backend, after=0.0)
    sig = Signature("add", [1])
    d = delivery(sig)
    tracker.received([d])
    ticking = threading.Thread(target=tracker.tick, kwargs={"now": time.monotonic() + 1})
    ticking.start()
    assert backend.entered.wait(5)
    finished = threading.Event()

    def finish() -> None:
        tracker.finish(d)
        finished.set()

    finishing = threading.Thread(target=finish)
    finishing.start()
    assert not finished.wait(0.2)  # the RECEIVED write is still under way
    backend.release.set()
    assert finished.wait(5)
    ticking.join()
    finishing.join()
    assert backend.states == [TaskState.RECEIVED]
    assert tracker.tick(now=time.monotonic() + 10) == 0  # nothing more for a finished delivery


def test_many_received_at_once_are_each_tracked() -> None:
    backend = Recording()
    tracker = ProgressTracker(backend, after=0.05)
    sigs = [Signature("add", [i]) for i in range(3)]
    tracker.received([delivery(s, tag) for tag, s in enumerate(sigs, 1)])
    tracker.finish(delivery(sigs[1], 2))
    assert tracker.tick(now=time.monotonic() + 1) == 2
    assert [backend.get(s.uuid) is not None for s in sigs] == [True, False, True]
