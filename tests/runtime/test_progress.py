"""RECEIVED/STARTED are written only for deliveries held longer than a moment, and never over a
final state."""

from __future__ import annotations

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
    tracker.received(d)
    tracker.started(d, sig)
    tracker.finish(d)
    assert tracker.tick(now=time.monotonic() + 10) == 0
    assert backend.states == []


def test_waiting_message_is_received_then_running_task_is_started() -> None:
    backend = Recording()
    tracker = ProgressTracker(backend, after=0.05)
    sig = Signature("add", [1])
    d = delivery(sig)
    tracker.received(d)
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
    tracker.received(d)
    tracker.tick(now=time.monotonic() + 1)
    tracker.give_back(d)
    assert backend.get(sig.uuid) is None
