"""What the hooks cost per task: ``Executor.process`` of no-op tasks on the in-memory broker with no
result backend, with no hook, an empty hook, the metrics hook, the events hook (in-process channel)
the tracing hook (an SDK tracer provider with no exporter), the revoke hook (one revocation, not of
these tasks) and a rate limit far above the rate reached (the process's own bucket), all in one run.

Run: ``.venv/bin/python -m benchmarks.hooks [--tasks N] [--repeat R]`` (metrics and tracing need
the ``metrics`` and ``otel`` extras; rows whose extra is missing are skipped). Prints microseconds
per task and the ratio to the run with no hook; compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from benchmarks.machine import describe
from machinery import App, Config, Hook, Signature
from machinery.execution import Executor
from machinery.hooks import TaskCall

Setup = Callable[[App], None]


class _Empty(Hook):
    def before_run(self, call: TaskCall) -> None:
        return None


def _none(app: App) -> None:
    pass


def _empty(app: App) -> None:
    app.hooks.add(_Empty())


def _metrics(app: App) -> None:
    from prometheus_client import CollectorRegistry

    from machinery.metrics import WorkerMetrics

    app.hooks.add(WorkerMetrics(CollectorRegistry()))


def _events(app: App) -> None:
    from machinery.events import EventEmitter, MemoryEvents

    channel = MemoryEvents("bench-hooks")
    app.hooks.add(EventEmitter(lambda: channel, default_queue=app.config.default_queue))


def _tracing(app: App) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from machinery.tracing import enable_tracing

    enable_tracing(app, TracerProvider())


def _revoke(app: App) -> None:
    from machinery.backends.memory import MemoryBackend
    from machinery.revoke import Revoker

    backend = MemoryBackend()
    backend.control.revoke("task_not_this_one", "bench", 3600)
    app.hooks.add(Revoker(backend))


def _rate_limit(app: App) -> None:
    app.rate_limit("noop", "1000000/s")  # no result store here: the worker's own bucket


SETUPS: dict[str, Setup] = {"no hook": _none, "empty hook": _empty, "metrics": _metrics, "events": _events,
                            "tracing": _tracing, "revoke": _revoke, "rate limit": _rate_limit}


def run_once(setup: Setup, tasks: int, tag: str) -> float:
    """Seconds per task for ``tasks`` no-op tasks processed one by one."""
    app = App(Config(broker_url=f"memory://bench-{tag}", result_backend="none", default_queue="bench"))
    app.register_task("noop", lambda: None)
    setup(app)
    executor = Executor(app.config, app.registry, app.broker, None, hooks=app.hooks)
    app.send_tasks([Signature("noop", []) for _ in range(tasks)])
    deliveries = app.broker.fetch(["bench"], tasks, 1.0)
    assert len(deliveries) == tasks
    started = time.perf_counter()
    for d in deliveries:
        executor.process(d)
    elapsed = time.perf_counter() - started
    app.broker.ack_many(deliveries)
    app.close()
    return elapsed / tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(describe())
    results: dict[str, float] = {}
    for name, setup in SETUPS.items():
        try:
            times = [run_once(setup, args.tasks, f"{name}-{i}") for i in range(args.repeat)]
        except ImportError as exc:
            print(f"{name:<12} skipped ({exc})")
            continue
        results[name] = statistics.median(times)
    base = results["no hook"]
    for name, seconds in results.items():
        print(f"{name:<12} {seconds * 1e6:7.2f} us/task   x{seconds / base:.2f}")


if __name__ == "__main__":
    main()
