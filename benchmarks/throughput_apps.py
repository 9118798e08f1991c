"""The no-op tasks ``throughput.py`` runs in worker processes: machinery's and Huey's. Each run
calls ``side_channel.done`` (the side channel that times the first and the N-th completion)."""

from __future__ import annotations

import importlib
import logging
import os
import sqlite3
from typing import Any

from benchmarks.side_channel import done
from machinery import App, load_config

app = App(load_config())


@app.task(name="noop")
def noop() -> int:
    """Does nothing but report that it ran."""
    done()
    return 1


def huey_instance(path: str, *, results: bool, synchronous: str = "NORMAL") -> Any:
    """A Huey on SQLite file ``path`` with WAL and ``PRAGMA synchronous`` as given."""
    huey_module = importlib.import_module("huey")  # imported by name: optional, and untyped
    storage_module = importlib.import_module("huey.storage")

    base: Any = storage_module.SqliteStorage

    class Storage(base):  # type: ignore[misc]
        def _create_connection(self) -> sqlite3.Connection:
            conn: sqlite3.Connection = super()._create_connection()
            conn.execute(f"pragma synchronous={synchronous}")
            return conn

    huey = huey_module.Huey("bench", storage_class=Storage, filename=path, results=results)

    @huey.task(name="noop")  # type: ignore[untyped-decorator]
    def huey_noop() -> int:
        done()
        return 1

    huey.noop = huey_noop
    return huey


def run_huey_consumer() -> None:
    """Run a Huey consumer (4 worker threads, its default polling) until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.WARNING)
    huey = huey_instance(
        os.environ["BENCH_HUEY_DB"],
        results=os.environ.get("BENCH_HUEY_RESULTS") == "1",
        synchronous=os.environ.get("BENCH_SYNC", "NORMAL"),
    )
    consumer = huey.create_consumer(workers=int(os.environ.get("BENCH_WORKERS", "4")), worker_type="thread")
    consumer.run()


if __name__ == "__main__":
    run_huey_consumer()
