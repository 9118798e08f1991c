"""The ResultBackend protocol: where task states and results are kept for callers to read."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from machinery.jsonvalues import JSONValue
from machinery.states import TaskResult

__all__ = ["ResultBackend", "wait_until_final"]


@runtime_checkable
class ResultBackend(Protocol):
    """Task UUID -> TaskResult, plus group bookkeeping for chords. All methods are thread-safe;
    failures raise ``ResultBackendError``."""

    def set(self, result: TaskResult) -> None:
        """Store ``result`` as the latest state of its task (it expires after the configured time)."""
        ...

    def get(self, task_uuid: str) -> TaskResult | None:
        """The latest stored state, or None when nothing is stored (PENDING or expired)."""
        ...

    def wait(self, task_uuid: str, timeout: float) -> TaskResult | None:
        """Block up to ``timeout`` seconds until the task's state is final; the latest state seen."""
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
