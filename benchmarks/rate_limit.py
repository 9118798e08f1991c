"""The rate a limited task achieves against its limit: several workers (each an App of its own in
this process, with its own threads, sharing only the SQLite broker and the result store) run a
no-op task registered with ``rate_limit``; the task notes when each run starts.

Prints, per case: the limit, the achieved rate over the run ((runs - 1) / (last start - first
start)), their ratio, the most runs seen in any window of one limit-second (at most ``burst`` more
than the limit means none ran early) and how many runs were given back to the broker with a delay.

Run: ``.venv/bin/python -m benchmarks.rate_limit [--tasks N] [--workers W] [--threads T]
[--store sqlite|redis]`` (redis needs a server at 127.0.0.1:6379).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from bisect import bisect_right
from pathlib import Path

from benchmarks.machine import describe, load
from machinery import App, Config, Hook, Outcome, Signature, TaskCall, TaskState
from machinery.rate_limits import parse_rate_limit

CASES = ("20/s", "100/s", "600/m")


class _Delays(Hook):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0

    def after_run(self, call: TaskCall, outcome: Outcome) -> None:
        if outcome.state is TaskState.PENDING:
            with self.lock:
                self.count += 1


def run_case(rate: str, *, tasks: int, workers: int, threads: int, store: str, tmp: Path) -> str:
    name = f"limited_{uuid.uuid4().hex[:8]}"
    broker = f"sqlite:///{tmp / f'{name}.sqlite3'}"
    backend = broker if store == "sqlite" else "redis://127.0.0.1:6379/0"
    config = Config(broker_url=broker, result_backend=backend, default_queue=name)
    starts: list[float] = []
    delays = _Delays()
    apps = [App(config) for _ in range(workers)]
    for app in apps:
        app.register_task(name, lambda: starts.append(time.time()), rate_limit=rate)
        app.hooks.add(delays)
    results = apps[0].send_tasks([Signature(name, []) for _ in range(tasks)])
    running = [app.worker(concurrency=threads) for app in apps]
    for worker in running:
        worker.start()
    try:
        for result in results:
            result.get(timeout=tasks * 2 / parse_rate_limit(rate).per_second + 30)
    finally:
        for worker in running:
            worker.stop(wait=True, timeout=30)
        for app in apps:
            app.close()
    starts.sort()
    limit = parse_rate_limit(rate).per_second
    achieved = (len(starts) - 1) / (starts[-1] - starts[0])
    window = 1.0 if limit >= 1 else 1.0 / limit
    busiest = max(bisect_right(starts, t + window - 1e-9) - i for i, t in enumerate(starts))
    return (f"{rate:>7} ({limit:7.2f}/s)  achieved {achieved:7.2f}/s  ratio {achieved / limit:5.3f}  "
            f"most in {window:g}s: {busiest} (limit {limit * window:g})  given back {delays.count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    args = parser.parse_args()
    print(describe(f"store {args.store}", f"{args.workers} workers x {args.threads} threads",
                   f"{args.tasks} tasks per case"))
    print(f"load before: {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        for rate in CASES:
            print(run_case(rate, tasks=args.tasks, workers=args.workers, threads=args.threads, store=args.store,
                           tmp=Path(tmp)), flush=True)
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
