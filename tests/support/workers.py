"""A worker in this process's threads, for a ``with`` block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from machinery import App, Worker
from tests.support.waiting import TIMEOUT

__all__ = ["running"]


@contextmanager
def running(app: App, *, concurrency: int = 2, queues: list[str] | None = None) -> Iterator[Worker]:
    """A worker for ``app`` running in this process's threads for the ``with`` block."""
    worker = app.worker(concurrency=concurrency, queues=queues)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(wait=True, timeout=TIMEOUT)
