"""The in-memory result backend: task states in this process's memory, for tests and embedding."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from machinery.backends.base import wait_all_final
from machinery.backends.control import MemoryControl
from machinery.backends.records import stamped
from machinery.config import Config
from machinery.jsonvalues import JSONValue
from machinery.schemes import SharedByName
from machinery.states import TaskResult

__all__ = ["MemoryBackend"]

_SHARED: SharedByName[MemoryBackend] = SharedByName()


class _GroupRecord:
    __slots__ = ("members", "results")

    def __init__(self, members: Sequence[str]) -> None:
        self.members = list(members)
        self.results: dict[str, JSONValue] = {}


class MemoryBackend:
    """A ResultBackend in memory. ``MemoryBackend.named(name)`` gives one shared instance per name,
    so an app's producer and worker built from the same ``memory://name`` URL meet."""

    def __init__(self, *, expires_in: float = 3600.0) -> None:
        self.expires_in = expires_in
        self._cond = threading.Condition(threading.Lock())
        self._results: dict[str, tuple[TaskResult, float]] = {}
        self._groups: dict[str, _GroupRecord] = {}
        self._follow_ups_sent: dict[str, float] = {}
        self.control = MemoryControl()
        """Revocations, rate-limit buckets and leases (``ControlStore``) of this process."""

    @classmethod
    def named(cls, name: str, *, expires_in: float = 3600.0) -> MemoryBackend:
        """The process-wide backend called ``name`` (created on first use)."""
        return _SHARED.get(name, lambda: cls(expires_in=expires_in))

    @classmethod
    def from_config(cls, config: Config) -> MemoryBackend:
        """The process-wide backend that ``memory://<name>`` names, keeping results
        ``config.results_expire_in`` seconds."""
        return cls.named(config.result_backend.partition("://")[2], expires_in=float(config.results_expire_in))

    def _current(self, task_uuid: str, now: float) -> TaskResult | None:
        entry = self._results.get(task_uuid)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._results[task_uuid]
            return None
        return entry[0]

    def set(self, result: TaskResult) -> None:
        self.set_many((result,))

    def set_many(self, results: Sequence[TaskResult]) -> None:
        expires_at = time.monotonic() + self.expires_in
        with self._cond:
            for result in results:
                self._results[result.task_uuid] = (stamped(result), expires_at)
            self._cond.notify_all()

    def get(self, task_uuid: str) -> TaskResult | None:
        with self._cond:
            return self._current(task_uuid, time.monotonic())

    def get_many(self, task_uuids: Sequence[str]) -> list[TaskResult | None]:
        now = time.monotonic()
        with self._cond:
            return [self._current(uuid, now) for uuid in task_uuids]

    def wait_many(self, task_uuids: Sequence[str], timeout: float) -> list[TaskResult | None]:
        deadline = time.monotonic() + max(timeout, 0.0)

        def pause(seconds: float) -> None:
            with self._cond:
                self._cond.wait(seconds)

        return wait_all_final(task_uuids, self.get_many, pause, deadline, 0.05)

    def mark_follow_ups_sent(self, task_uuids: Sequence[str]) -> None:
        expires_at = time.monotonic() + self.expires_in
        with self._cond:
            for uuid in task_uuids:
                self._follow_ups_sent[uuid] = expires_at

    def follow_ups_sent(self, task_uuid: str) -> bool:
        with self._cond:
            return self._follow_ups_sent.get(task_uuid, 0.0) > time.monotonic()

    def wait(self, task_uuid: str, timeout: float) -> TaskResult | None:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while True:
                now = time.monotonic()
                current = self._current(task_uuid, now)
                if (current is not None and current.ready) or now >= deadline:
                    return current
                self._cond.wait(deadline - now)

    def group_start(self, group_uuid: str, task_uuids: Sequence[str]) -> None:
        with self._cond:
            self._groups[group_uuid] = _GroupRecord(task_uuids)

    def group_add_result(self, group_uuid: str, task_uuid: str, result: JSONValue) -> list[JSONValue] | None:
        with self._cond:
            record = self._groups.get(group_uuid)
            if record is None:
                return None
            record.results[task_uuid] = result
            if len(record.results) < len(record.members) or any(m not in record.results for m in record.members):
                return None
            return [record.results[m] for m in record.members]

    def group_done(self, group_uuid: str) -> None:
        with self._cond:
            self._groups.pop(group_uuid, None)

    def forget(self, task_uuid: str) -> None:
        with self._cond:
            self._results.pop(task_uuid, None)
            self._follow_ups_sent.pop(task_uuid, None)

    def close(self) -> None:
        """Nothing to release."""
