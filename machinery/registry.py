"""The registry: task names mapped to the Task objects a worker runs for them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from machinery.errors import TaskNotRegistered
from machinery.task import Task, as_task, positional_names
from machinery.timelimits import NO_LIMITS, TimeLimits

__all__ = ["Registry"]


class Registry:
    """Task names to Tasks. Names are unique; registering a name twice replaces the first task
    only when ``replace=True`` is given, so a typo cannot silently shadow a task."""

    __slots__ = ("_limits", "_names", "_tasks")

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._limits: dict[str, TimeLimits] = {}
        self._names: dict[str, tuple[str, ...]] = {}

    def register(
        self,
        name: str,
        task: Task | Callable[..., object],
        *,
        replace: bool = False,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
    ) -> Task:
        """Register ``task`` (a Task object or a plain function) under ``name``; returns the Task.

        ``time_limit`` / ``soft_time_limit``: the task's default limits in seconds (a signature may
        override them); a Task object's own ``time_limit`` / ``soft_time_limit`` attributes are
        used when these are not given."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"task name must be a non-empty str, got {name!r}")
        if name in self._tasks and not replace:
            raise ValueError(f"task {name!r} is already registered (pass replace=True to replace it)")
        wrapped = as_task(task, name)
        if time_limit is None:
            time_limit = getattr(task, "time_limit", None)
        if soft_time_limit is None:
            soft_time_limit = getattr(task, "soft_time_limit", None)
        limits = TimeLimits(soft_time_limit, time_limit)
        self._tasks[name] = wrapped
        self._names.pop(name, None)
        if limits.any:
            self._limits[name] = limits
        else:
            self._limits.pop(name, None)
        return wrapped

    def limits(self, name: str) -> TimeLimits:
        """The time limits task ``name`` was registered with (none by default)."""
        return self._limits.get(name, NO_LIMITS)

    def register_many(self, tasks: Mapping[str, Task | Callable[..., object]]) -> None:
        """Register every name -> task of ``tasks``; nothing is registered if one is invalid."""
        staged = Registry()
        for name, task in tasks.items():
            staged.register(name, task)
            if name in self._tasks:
                raise ValueError(f"task {name!r} is already registered")
        self._tasks.update(staged._tasks)
        self._limits.update(staged._limits)
        for name in staged._tasks:
            self._names.pop(name, None)

    def get(self, name: str) -> Task:
        """The Task registered as ``name``; ``TaskNotRegistered`` if there is none."""
        try:
            return self._tasks[name]
        except KeyError:
            raise TaskNotRegistered(name) from None

    def arg_names(self, name: str) -> tuple[str, ...]:
        """The names of the positional parameters of task ``name``, in order (``positional_names``):
        none for a task not registered here or one that does not name them."""
        names = self._names.get(name)
        if names is None:
            task = self._tasks.get(name)
            names = () if task is None else positional_names(task)
            if task is not None:
                self._names[name] = names
        return names

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._tasks)
