"""The demo's app, used by ``machinery demo``: the example tasks (``demo_tasks``) and an error
callback.

The app is configured from the environment (``MACHINERY_*``), so the demo can point a worker
process and itself at the same temporary SQLite files.
"""

from __future__ import annotations

from machinery.app import App
from machinery.config import load_config
from machinery.demo_tasks import AddTask, FailingTask, MultiplyTask
from machinery.jsonvalues import JSONValue

__all__ = ["AddTask", "FailingTask", "MultiplyTask", "app", "describe_error"]


def describe_error(error: str, *context: JSONValue) -> str:
    """An error callback: gets the failed task's error text first."""
    return f"error callback received: {error!r}"


app = App(load_config())
app.register_tasks({"add": AddTask(), "multiply": MultiplyTask(), "fail": FailingTask(), "on_error": describe_error})
