"""Handles on sent work: ``AsyncResult`` for one task, and results for chains, groups and chords.

They read the result backend; nothing here talks to the broker. A task with no stored state is
PENDING (sending writes nothing, so absence means "not started yet")."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from machinery.backends.base import ResultBackend
from machinery.errors import ResultBackendError, ResultTimeout, TaskFailed
from machinery.jsonvalues import JSONValue
from machinery.states import TaskResult, TaskState

__all__ = ["AsyncResult", "ChainResult", "ChordResult", "GroupResult"]

#: Longest single ``backend.wait`` call while waiting without a timeout.
_WAIT_SLICE = 30.0


def _require(backend: ResultBackend | None) -> ResultBackend:
    if backend is None:
        raise ResultBackendError(
            'no result backend is configured (result_backend is "none"), so results cannot be read; '
            "set result_backend to a sqlite://, redis:// or memory:// URL"
        )
    return backend


class AsyncResult:
    """The state and eventual value of one sent task, read from the result backend."""

    __slots__ = ("_backend", "name", "task_uuid")

    def __init__(self, task_uuid: str, backend: ResultBackend | None, *, name: str = "") -> None:
        self.task_uuid = task_uuid
        self.name = name
        self._backend = backend

    def __repr__(self) -> str:
        label = f" {self.name}" if self.name else ""
        return f"<{type(self).__name__}{label} {self.task_uuid}>"

    def info(self) -> TaskResult:
        """The stored record (a PENDING one when nothing is stored yet)."""
        stored = _require(self._backend).get(self.task_uuid)
        return stored if stored is not None else TaskResult(self.task_uuid, TaskState.PENDING, self.name)

    @property
    def state(self) -> TaskState:
        """The task's latest recorded state; PENDING when nothing is recorded yet."""
        return self.info().state

    def ready(self) -> bool:
        """True once the task succeeded or failed for good."""
        return self.state.is_final

    def wait_final(self, deadline: float | None, timeout: float | None) -> TaskResult:
        """Block until the task is final or ``deadline`` (monotonic) passes (``ResultTimeout``)."""
        backend = _require(self._backend)
        while True:
            if deadline is None:
                slice_ = _WAIT_SLICE
            else:
                slice_ = deadline - time.monotonic()
                if slice_ <= 0:
                    stored = backend.get(self.task_uuid)
                    if stored is not None and stored.ready:
                        return stored
                    raise ResultTimeout(self.task_uuid, timeout or 0.0)
            stored = backend.wait(self.task_uuid, slice_)
            if stored is not None and stored.ready:
                return stored

    def _value(self, record: TaskResult) -> JSONValue:
        if record.state is TaskState.FAILURE:
            raise TaskFailed(self.task_uuid, record.error, name=record.name or self.name)
        if record.state is TaskState.REVOKED:
            raise TaskFailed(self.task_uuid, f"revoked: {record.error}", name=record.name or self.name)
        return record.result

    def get(self, timeout: float | None = None) -> JSONValue:
        """The task's return value, waiting up to ``timeout`` seconds (None: as long as it takes).
        Raises ``TaskFailed`` carrying the error text, or ``ResultTimeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._value(self.wait_final(deadline, timeout))


class ChainResult(AsyncResult):
    """The result of a chain: its value is the last step's, but a failed earlier step (after
    which nothing more runs) raises ``TaskFailed`` for that step."""

    __slots__ = ("steps",)

    def __init__(self, steps: Sequence[AsyncResult], backend: ResultBackend | None) -> None:
        if not steps:
            raise ValueError("a chain result needs at least one step")
        super().__init__(steps[-1].task_uuid, backend, name=steps[-1].name)
        self.steps = tuple(steps)

    def info(self) -> TaskResult:
        """The failed step's record if one failed, else the first unfinished step's, else the last's."""
        for step in self.steps:
            record = step.info()
            if record.state is not TaskState.SUCCESS:
                return record
        return self.steps[-1].info()

    def get(self, timeout: float | None = None) -> JSONValue:
        deadline = None if timeout is None else time.monotonic() + timeout
        value: JSONValue = None
        for step in self.steps:
            value = step._value(step.wait_final(deadline, timeout))
        return value


class GroupResult:
    """The results of a group's tasks, in the group's order."""

    __slots__ = ("group_uuid", "results")

    def __init__(self, group_uuid: str, results: Sequence[AsyncResult]) -> None:
        self.group_uuid = group_uuid
        self.results = tuple(results)

    def __iter__(self) -> Iterator[AsyncResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __repr__(self) -> str:
        return f"<GroupResult {self.group_uuid} ({len(self.results)} tasks)>"

    @property
    def states(self) -> list[TaskState]:
        return [r.state for r in self.results]

    def ready(self) -> bool:
        """True once every task of the group is final."""
        return all(r.ready() for r in self.results)

    def get(self, timeout: float | None = None) -> list[JSONValue]:
        """Every task's value in group order; ``TaskFailed`` for the first failed one, or
        ``ResultTimeout`` when they are not all done within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return [r._value(r.wait_final(deadline, timeout)) for r in self.results]


class ChordResult:
    """A chord's group and its callback; ``get`` gives the callback's value (raising
    ``TaskFailed`` when a member failed, since the callback then never runs)."""

    __slots__ = ("callback", "group")

    def __init__(self, group: GroupResult, callback: AsyncResult) -> None:
        self.group = group
        self.callback = callback

    def __repr__(self) -> str:
        return f"<ChordResult {self.group.group_uuid} -> {self.callback.task_uuid}>"

    @property
    def task_uuid(self) -> str:
        return self.callback.task_uuid

    @property
    def state(self) -> TaskState:
        for r in self.group.results:
            if r.state is TaskState.FAILURE or r.state is TaskState.REVOKED:
                return TaskState.FAILURE
        return self.callback.state

    def ready(self) -> bool:
        return self.state.is_final

    def get(self, timeout: float | None = None) -> JSONValue:
        deadline = None if timeout is None else time.monotonic() + timeout
        for r in self.group.results:
            r._value(r.wait_final(deadline, timeout))
        return self.callback._value(self.callback.wait_final(deadline, timeout))
