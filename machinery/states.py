"""Task states (Go Machinery's names) and the record a result backend keeps for each task."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from machinery.jsonvalues import JSONValue

__all__ = ["FINAL_STATES", "TaskResult", "TaskState"]


class TaskState(str, enum.Enum):
    """Where a task is in its life. ``SUCCESS``, ``FAILURE`` and ``REVOKED`` (not run: a hook
    skipped it) are final.

    A ``str`` (its value is its name, as on the wire and in the stores): ``str()``, f-strings and
    ``format()`` give the bare name on every supported Python, as ``enum.StrEnum`` (3.11+) would."""

    PENDING = "PENDING"
    RECEIVED = "RECEIVED"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED})


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What a result backend holds for one task UUID."""

    task_uuid: str
    state: TaskState
    name: str = ""
    result: JSONValue = None
    error: str = ""
    updated_at: float = 0.0

    @property
    def ready(self) -> bool:
        return self.state.is_final
