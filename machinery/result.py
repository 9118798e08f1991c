"""Handles on sent work: ``AsyncResult`` for one task, and results for chains, groups and chords.

They read the result backend; nothing here talks to the broker. A task with no stored state is
PENDING (sending writes nothing, so absence means "not started yet").

``get()`` gives plain values (``dict``, ``list``, as ``json.loads`` would), or, for a typed task,
its declared return type (``AsyncResult[R].get() -> R``: a dataclass comes back as that dataclass).
The frozen values of the stored record stay inside ``info()``. A Go task that returned several
values (Go's Redis layout, ``GoResults``) gives them as a tuple, where one list value gives a list."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, Generic, cast

from typing_extensions import TypeVar

from machinery.backends.base import READ_CHUNK, GoResults, ResultBackend
from machinery.conversion import convert_result
from machinery.errors import ResultBackendError, ResultTimeout, TaskFailed
from machinery.heartbeat import silence_hint
from machinery.jsonvalues import JSON, plain
from machinery.states import TaskResult, TaskState

__all__ = ["AsyncResult", "ChainResult", "ChordResult", "GroupResult", "Siblings", "wait_all"]

R_co = TypeVar("R_co", covariant=True, default=JSON)

#: Longest single ``backend.wait`` call while waiting without a timeout.
_WAIT_SLICE = 30.0


def _require(backend: ResultBackend | None) -> ResultBackend:
    if backend is None:
        raise ResultBackendError(
            'no result backend is configured (result_backend is "none"), so results cannot be read; '
            "set result_backend to a sqlite://, redis:// or memory:// URL"
        )
    return backend


class Siblings:
    """The tasks sent together by one ``send_tasks`` call. When one handle's ``get()`` finds its
    task unfinished in what was read before, the states of it and of up to ``READ_CHUNK`` - 1
    siblings sent after it are read in one ``get_many``, and those found final are kept: looping
    over the handles costs one read per ``READ_CHUNK`` finished tasks, not one per task."""

    __slots__ = ("_final", "_position", "_uuids")

    def __init__(self, task_uuids: Sequence[str]) -> None:
        self._uuids = list(task_uuids)
        self._position = {uuid: i for i, uuid in enumerate(self._uuids)}
        self._final: dict[str, TaskResult] = {}

    def final(self, backend: ResultBackend, task_uuid: str) -> TaskResult | None:
        """``task_uuid``'s final record, reading it with the next siblings when not known yet."""
        known = self._final.pop(task_uuid, None)
        if known is not None:
            return known
        start = self._position.get(task_uuid)
        if start is None:
            return None
        chunk = [u for u in self._uuids[start:start + READ_CHUNK] if u not in self._final]
        mine: TaskResult | None = None
        for uuid, record in zip(chunk, backend.get_many(chunk), strict=True):
            if record is not None and record.ready:
                if uuid == task_uuid:
                    mine = record
                else:
                    self._final[uuid] = record
        return mine


class AsyncResult(Generic[R_co]):
    """The state and eventual value of one sent task, read from the result backend. ``R`` is what
    ``get()`` returns: the typed task's return type, or plain JSON."""

    __slots__ = ("_backend", "_siblings", "name", "result_type", "task_uuid")

    def __init__(
        self, task_uuid: str, backend: ResultBackend | None, *, name: str = "", result_type: object = None,
        siblings: Siblings | None = None,
    ) -> None:
        self.task_uuid = task_uuid
        self.name = name
        self.result_type = result_type
        """The return annotation ``get()`` converts the stored value to (None: plain JSON)."""
        self._backend = backend
        self._siblings = siblings
        """The tasks sent with this one (``send_tasks``), whose states ``get()`` reads together."""

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
        siblings = self._siblings
        if siblings is not None:
            known = siblings.final(backend, self.task_uuid)
            if known is not None:
                return known
        while True:
            if deadline is None:
                slice_ = _WAIT_SLICE
            else:
                slice_ = deadline - time.monotonic()
                if slice_ <= 0:
                    stored = backend.get(self.task_uuid)
                    if stored is not None and stored.ready:
                        return stored
                    raise ResultTimeout(self.task_uuid, timeout or 0.0, hint=silence_hint(backend))
            stored = backend.wait(self.task_uuid, slice_)
            if stored is not None and stored.ready:
                return stored

    def _value(self, record: TaskResult) -> R_co:
        if record.state is TaskState.FAILURE:
            raise TaskFailed(self.task_uuid, record.error, name=record.name or self.name)
        if record.state is TaskState.REVOKED:
            raise TaskFailed(self.task_uuid, f"revoked: {record.error}", name=record.name or self.name)
        value = plain(record.result)
        if self.result_type is None:
            if type(record.result) is tuple and isinstance(self._backend, GoResults):
                several = self._backend.results_of(self.task_uuid)  # several results, or one list?
                if several is not None and len(several) > 1:
                    return cast(R_co, tuple([plain(v) for v in several]))
            return cast(R_co, value)
        return cast(R_co, convert_result(value, self.result_type, self.task_uuid))

    def wait_final_ok(self, deadline: float | None, timeout: float | None) -> None:
        """Block until the task is final (``ResultTimeout`` past ``deadline``); ``TaskFailed`` if it failed."""
        record = self.wait_final(deadline, timeout)
        if record.state is TaskState.FAILURE:
            raise TaskFailed(self.task_uuid, record.error, name=record.name or self.name)
        if record.state is TaskState.REVOKED:
            raise TaskFailed(self.task_uuid, f"revoked: {record.error}", name=record.name or self.name)

    def get(self, timeout: float | None = None) -> R_co:
        """The task's return value, waiting up to ``timeout`` seconds (None: as long as it takes):
        plain JSON (``dict``, ``list``...) or the typed task's return type. Raises ``TaskFailed``
        carrying the error text, or ``ResultTimeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._value(self.wait_final(deadline, timeout))


class ChainResult(AsyncResult[R_co]):
    """The result of a chain: its value is the last step's, but a failed earlier step (after
    which nothing more runs) raises ``TaskFailed`` for that step."""

    __slots__ = ("steps",)

    def __init__(self, steps: Sequence[AsyncResult[Any]], backend: ResultBackend | None) -> None:
        if not steps:
            raise ValueError("a chain result needs at least one step")
        super().__init__(steps[-1].task_uuid, backend, name=steps[-1].name, result_type=steps[-1].result_type)
        self.steps: tuple[AsyncResult[Any], ...] = tuple(steps)

    def info(self) -> TaskResult:
        """The failed step's record if one failed, else the first unfinished step's, else the last's."""
        for step in self.steps:
            record = step.info()
            if record.state is not TaskState.SUCCESS:
                return record
        return self.steps[-1].info()

    def get(self, timeout: float | None = None) -> R_co:
        deadline = None if timeout is None else time.monotonic() + timeout
        for step in self.steps[:-1]:
            step.wait_final_ok(deadline, timeout)
        return self._value(self.wait_final(deadline, timeout))


class GroupResult(Generic[R_co]):
    """The results of a group's tasks, in the group's order."""

    __slots__ = ("group_uuid", "results")

    def __init__(self, group_uuid: str, results: Sequence[AsyncResult[R_co]]) -> None:
        self.group_uuid = group_uuid
        self.results: tuple[AsyncResult[R_co], ...] = tuple(results)

    def __iter__(self) -> Iterator[AsyncResult[R_co]]:
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

    def get(self, timeout: float | None = None) -> list[R_co]:
        """Every task's value in group order once all are final; ``TaskFailed`` for the first
        failed one, or ``ResultTimeout`` when they are not all done within ``timeout`` seconds.
        The members are awaited together (``ResultBackend.wait_many``: woken by notifications,
        read in batches); a chain's result among them is awaited step by step."""
        deadline = None if timeout is None else time.monotonic() + timeout
        records = wait_all(self.results, deadline, timeout)
        return [r._value(record) for r, record in zip(self.results, records, strict=True)]


def wait_all(results: Sequence[AsyncResult[Any]], deadline: float | None, timeout: float | None) -> list[TaskResult]:
    """The final records of ``results`` (in order), waiting for them together until ``deadline``
    (monotonic; None: as long as it takes), else ``ResultTimeout`` naming the first unfinished."""
    singles = [r for r in results if type(r) is AsyncResult]
    final: dict[str, TaskResult] = {}
    if singles:
        backend = _require(singles[0]._backend)
        uuids = list(dict.fromkeys(r.task_uuid for r in singles))
        while True:
            slice_ = _WAIT_SLICE if deadline is None else max(deadline - time.monotonic(), 0.0)
            states = backend.wait_many(uuids, slice_)
            waiting = []
            for uuid, state in zip(uuids, states, strict=True):
                if state is not None and state.ready:
                    final[uuid] = state
                else:
                    waiting.append(uuid)
            if not waiting:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeout(waiting[0], timeout or 0.0, hint=silence_hint(backend))
            uuids = waiting
    return [final[r.task_uuid] if type(r) is AsyncResult else r.wait_final(deadline, timeout) for r in results]


class ChordResult(Generic[R_co]):
    """A chord's group and its callback; ``get`` gives the callback's value (raising
    ``TaskFailed`` when a member failed, since the callback then never runs)."""

    __slots__ = ("callback", "group")

    def __init__(self, group: GroupResult[Any], callback: AsyncResult[R_co]) -> None:
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

    def get(self, timeout: float | None = None) -> R_co:
        """The callback's value (plain JSON or its typed return type); ``TaskFailed`` when a member
        or the callback failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for r, record in zip(self.group.results, wait_all(self.group.results, deadline, timeout), strict=True):
            if record.state is TaskState.FAILURE:
                raise TaskFailed(r.task_uuid, record.error, name=record.name or r.name)
        return self.callback._value(self.callback.wait_final(deadline, timeout))
