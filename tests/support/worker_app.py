"""The App that worker processes in tests run (``-A tests.support.worker_app:app``): configured
from ``MACHINERY_*`` variables, with the example tasks (``add``, ``multiply``, ``fail``) and a few
for fault tests."""

from __future__ import annotations

import os
import time

from examples.tasks import AddTask, FailingTask, MultiplyTask
from machinery import App, load_config
from tests.support.effects import EFFECTS_ENV, record_effect

app = App(load_config())
app.register_tasks({"add": AddTask(), "multiply": MultiplyTask(), "fail": FailingTask()})


@app.task(name="record")
def record(key: str, seconds: float = 0.0) -> str:
    """Sleeps ``seconds`` (to be killed mid-task), then records ``key`` as done (``effects``)."""
    time.sleep(seconds)
    record_effect(os.environ[EFFECTS_ENV], key)
    return key


@app.task(name="sleep")
def sleep(seconds: float) -> float:
    """Sleeps ``seconds``."""
    time.sleep(seconds)
    return seconds


@app.task(name="pid")
def pid(seconds: float = 0.0) -> int:
    """Sleeps ``seconds``, then returns the id of the worker process that ran it."""
    time.sleep(seconds)
    return os.getpid()
