"""The ResultBackend protocol: where task states and results are kept for callers to read."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from machinery.jsonvalues import JSONValue
from machinery.states import TaskResult

__all__ = ["READ_CHUNK", "GoResults", "ResultBackend", "wait_all_final", "wait_until_final"]

#: Most task UUIDs read in one round trip or query by ``get_many`` and ``wait_many``.
READ_CHUNK = 1000


@runtime_checkable
class ResultBackend(Protocol):
    """Task UUID -> TaskResult, plus group bookkeeping for chords. All methods are thread-safe;
    failures raise ``ResultBackendError``."""

    def set(self, result: TaskResult) -> None:
        """Store ``result`` as the latest state of its task (it expires after the configured time)."""
        ...

    def set_many(self, results: Sequence[TaskResult]) -> None:
        """Store every one of ``results`` in one round trip or transaction (each expiring after
        the configured time) and wake the waiters of the final ones; all or, on failure, possibly
        some of them are stored (a later ``set_many`` of the same results is harmless)."""
        ...

    def get(self, task_uuid: str) -> TaskResult | None:
        """The latest stored state, or None when nothing is stored (PENDING or expired)."""
        ...

    def get_many(self, task_uuids: Sequence[str]) -> list[TaskResult | None]:
        """``get`` of each of ``task_uuids``, in order, read ``READ_CHUNK`` at a time."""
        ...

    def wait(self, task_uuid: str, timeout: float) -> TaskResult | None:
        """Block up to ``timeout`` seconds until the task's state is final; the latest state seen."""
        ...

    def wait_many(self, task_uuids: Sequence[str], timeout: float) -> list[TaskResult | None]:
        """Block up to ``timeout`` seconds until every one of ``task_uuids`` is final (woken by the
        same notifications as ``wait``, reading the unfinished ones in batches); the latest states
        seen, in order."""
        ...

    def mark_follow_ups_sent(self, task_uuids: Sequence[str]) -> None:
        """Remember (as long as results are kept) that these tasks' follow-up messages were
        published, so that a redelivery of one of them does not publish them again."""
        ...

    def follow_ups_sent(self, task_uuid: str) -> bool:
        """Whether ``mark_follow_ups_sent`` recorded ``task_uuid`` (and it has not expired)."""
        ...

    def group_start(self, group_uuid: str, task_uuids: Sequence[str]) -> None:
        """Record a group's members in order (before any of them is sent)."""
        ...

    def group_add_result(self, group_uuid: str, task_uuid: str, result: JSONValue) -> list[JSONValue] | None:
        """Record one member's result. When every member has one, return all results in group
        order (each later call returns them again until ``group_done``); None before that."""
        ...

    def group_done(self, group_uuid: str) -> None:
        """The chord callback was sent: forget the group's bookkeeping."""
        ...

    def forget(self, task_uuid: str) -> None:
        """Drop what is stored for ``task_uuid``."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class GoResults(ResultBackend, Protocol):
    """A result backend that keeps a task's results as Go Machinery v1 does: a list of typed
    values (none, one, or several for a Go task that returns several), which ``get`` reads as one
    value (None, the value, a tuple). A worker in Go mode passes each value of the list to callbacks
    as its own argument, as Go's worker does."""

    def results_of(self, task_uuid: str) -> tuple[JSONValue, ...] | None:
        """The stored results of a task that succeeded, each as a value; None when it has no
        stored success."""
        ...

    def group_add_results(
        self, group_uuid: str, task_uuid: str, results: tuple[JSONValue, ...]
    ) -> list[tuple[JSONValue, ...]] | None:
        """``group_add_result`` with a member's results as a list: each member's results, in group order."""
        ...


def wait_until_final(
    get: Callable[[], TaskResult | None], pause: Callable[[float], object], deadline: float, interval: float
) -> TaskResult | None:
    """Read the state with ``get`` until it is final or ``deadline`` (``time.monotonic``) passes,
    calling ``pause(seconds)`` (at most ``interval``) between reads; the last state read. A
    backend's ``wait``, given how it reads and how it sleeps until woken."""
    while True:
        current = get()
        if current is not None and current.ready:
            return current
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return current
        pause(min(remaining, interval))


def wait_all_final(
    task_uuids: Sequence[str],
    read_many: Callable[[Sequence[str]], list[TaskResult | None]],
    pause: Callable[[float], object],
    deadline: float,
    interval: float,
) -> list[TaskResult | None]:
    """A backend's ``wait_many``: read the states of ``task_uuids`` and, until they are all final
    or ``deadline`` (``time.monotonic``) passes, ``pause(seconds)`` (at most ``interval``; it returns
    early when a notification arrives) and read again the unfinished ones, in order and
    ``READ_CHUNK`` at a time, stopping at the first chunk that is not all final (the rest cannot
    complete the wait yet, and are read on a later pass). The latest states read, in order."""
    states: list[TaskResult | None] = [None] * len(task_uuids)
    pending = list(range(len(task_uuids)))
    first = True
    while True:
        start = 0
        while start < len(pending):
            chunk = pending[start:start + READ_CHUNK]
            read = read_many([task_uuids[i] for i in chunk])
            still = []
            for index, state in zip(chunk, read, strict=True):
                states[index] = state
                if state is None or not state.ready:
                    still.append(index)
            pending[start:start + READ_CHUNK] = still
            if still and not first:
                break
            start += len(still)
        first = False
        if not pending:
            return states
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return states
        pause(min(remaining, interval))
