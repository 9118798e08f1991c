"""Example tasks: ``AddTask``, ``MultiplyTask`` and ``FailingTask``, classes with ``run(self, args)``
(defined in ``machinery/demo_tasks.py``, which ``machinery demo`` runs too), and a plain function
registered as a task in ``app.py``."""

from __future__ import annotations

from machinery import JSONValue
from machinery.demo_tasks import AddTask, FailingTask, MultiplyTask

__all__ = ["AddTask", "FailingTask", "MultiplyTask", "report_error"]


def report_error(error: str, *context: JSONValue) -> str:
    """An error callback: the failed task's error text comes first."""
    return f"error callback got {error!r} with {list(context)}"
