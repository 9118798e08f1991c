"""The App that worker processes in runtime tests run (``-A tests.runtime.worker_app:app``):
configured from ``MACHINERY_*`` variables, with the seed's tasks and a few for fault tests."""

from __future__ import annotations

import os
import time

from examples.tasks import AddTask, FailingTask, MultiplyTask
from machinery import App, load_config

app = App(load_config())
app.register_tasks({"add": AddTask(), "multiply": MultiplyTask(), "fail": FailingTask()})

#: File each ``record`` task appends its argument to (one line per run).
EFFECTS_ENV = "MACHINERY_TEST_EFFECTS"


@app.task(name="record")
def record(key: str, seconds: float = 0.0) -> str:
    """Sleeps ``seconds`` (to be killed mid-task), then appends ``key`` to the effects file."""
    time.sleep(seconds)
    fd = os.open(os.environ[EFFECTS_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{key}\n".encode())
    finally:
        os.close(fd)
    return key


@app.task(name="sleep")
def sleep(seconds: float) -> float:
    """Sleeps ``seconds``."""
    time.sleep(seconds)
    return seconds


