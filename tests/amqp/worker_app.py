"""The App that worker processes of the AMQP tests run (``-A tests.amqp.worker_app:app``):
configured from ``MACHINERY_*`` variables, with the seed's tasks and ``record``, which writes its
effect to a SQLite side channel so tests can count what ran, duplicates included."""

from __future__ import annotations

import os
import sqlite3
import time

from examples.tasks import AddTask, FailingTask, MultiplyTask
from machinery import App, load_config

app = App(load_config())
app.register_tasks({"add": AddTask(), "multiply": MultiplyTask(), "fail": FailingTask()})

#: The SQLite file each ``record`` task inserts its key into (one row per run).
EFFECTS_ENV = "MACHINERY_TEST_EFFECTS"


def record_effect(path: str, key: str) -> None:
    """Insert ``key`` into the effects table of ``path`` (created if needed)."""
    with sqlite3.connect(path, timeout=30.0) as db:
        db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT NOT NULL, at REAL NOT NULL)")
        db.execute("INSERT INTO effects VALUES (?, ?)", (key, time.time()))


@app.task(name="record")
def record(key: str, seconds: float = 0.0) -> str:
    """Sleeps ``seconds`` (to be killed mid-task), then records ``key`` as done."""
    time.sleep(seconds)
    record_effect(os.environ[EFFECTS_ENV], key)
    return key


@app.task(name="pid")
def pid(seconds: float = 0.0) -> int:
    """Sleeps ``seconds``, then returns the id of the worker process that ran it."""
    time.sleep(seconds)
    return os.getpid()
