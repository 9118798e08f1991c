"""Helpers for runtime tests: an in-process worker for a ``with`` block, and what a worker in
another process needs (the environment and the command)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from machinery import App, Config, Worker

__all__ = ["REPO_ROOT", "eventually", "process_env", "running", "worker_command"]

REPO_ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running(app: App, *, concurrency: int = 2, queues: list[str] | None = None) -> Iterator[Worker]:
    """A worker for ``app`` running in this process's threads for the ``with`` block."""
    worker = app.worker(concurrency=concurrency, queues=queues)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(wait=True, timeout=30)


def process_env(config: Config, **extra: str) -> dict[str, str]:
    """The environment for a ``machinery`` process using ``config``'s broker, backend and queue."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACHINERY_") or k == "MACHINERY_NO_EXTENSIONS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env.update(
        MACHINERY_BROKER_URL=config.broker_url,
        MACHINERY_RESULT_BACKEND=config.result_backend,
        MACHINERY_EXCHANGE=config.exchange,
        MACHINERY_DEFAULT_QUEUE=config.default_queue,
        MACHINERY_BINDING_KEY=config.binding_key,
        MACHINERY_PREFETCH_COUNT=str(config.prefetch_count),
        MACHINERY_VISIBILITY_TIMEOUT=str(config.visibility_timeout),
    )
    env.update(extra)
    return env


def worker_command(app_spec: str = "tests.runtime.worker_app:app", *args: str) -> list[str]:
    """``python -m machinery worker -A app_spec args...`` with this interpreter."""
    return [sys.executable, "-m", "machinery", "worker", "-A", app_spec, *args]


def eventually(check: Callable[[], bool], timeout: float = 20.0, interval: float = 0.02) -> bool:
    """True once ``check()`` is true, False if it is not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


