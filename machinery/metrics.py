"""Prometheus metrics for workers (``machinery worker --metrics-port PORT``), built on the hooks.

``WorkerMetrics`` is a hook that counts what the worker does; ``QueueDepthCollector`` reads the
depth of the worker's queues from the broker when Prometheus scrapes; ``serve_metrics`` serves a
registry over HTTP. With several worker processes (``--processes``) each worker process writes its
metrics to files in a directory the supervisor gives it (prometheus_client's multiprocess mode,
``PROMETHEUS_MULTIPROC_DIR``) and the supervisor serves their sum on one port.

Needs the ``metrics`` extra (``pip install 'machinery[metrics]'``, which installs prometheus_client).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from wsgiref.simple_server import WSGIServer

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(f"machinery.metrics needs the metrics extra ({exc}): pip install 'machinery[metrics]'") from exc
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from machinery.app import App
from machinery.brokers.base import Broker
from machinery.hooks import Hook, Outcome, TaskCall, WorkerInfo
from machinery.signature import Signature
from machinery.states import TaskState

__all__ = [
    "DURATION_BUCKETS",
    "MULTIPROC_ENV",
    "MetricsServer",
    "QueueDepthCollector",
    "WorkerMetrics",
    "enable_metrics",
    "forget_process",
    "multiprocess_registry",
    "serve_metrics",
]

log = logging.getLogger("machinery.metrics")

#: The environment variable prometheus_client reads for its multiprocess directory.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Run-time histogram buckets, in seconds: from sub-millisecond tasks to five minutes.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 300.0)

_FINAL = frozenset({TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED})
_RAN = frozenset({TaskState.SUCCESS, TaskState.FAILURE, TaskState.RETRY})


class WorkerMetrics(Hook):
    """Counts tasks by name and final state, run times, retries, dead letters, tasks running now
    and whether the worker is up, into ``registry`` (None: into no registry, for multiprocess
    mode, where the values go to files that the supervisor's registry reads).

    Metric names: ``machinery_tasks_total{task,state}``, ``machinery_task_duration_seconds{task}``,
    ``machinery_task_retries_total{task}``, ``machinery_tasks_requeued_total{task}``,
    ``machinery_dead_letters_total{queue}``,
    ``machinery_tasks_running``, ``machinery_worker_up``.
    """

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.tasks = Counter("machinery_tasks", "Tasks that reached a final state, by task name and state",
                             ["task", "state"], registry=registry)
        self.duration = Histogram("machinery_task_duration_seconds",
                                  "Seconds from the start of a run to its outcome being stored, by task name",
                                  ["task"], buckets=DURATION_BUCKETS, registry=registry)
        self.retries = Counter("machinery_task_retries", "Runs that failed and were sent again, by task name",
                               ["task"], registry=registry)
        self.requeued = Counter("machinery_tasks_requeued", "Messages given back to their queue without running "
                                "(a hook's Delay, or an outcome that could not be stored), by task name",
                                ["task"], registry=registry)
        self.dead_letters = Counter("machinery_dead_letters", "Messages moved to a dead-letter queue, by queue",
                                    ["queue"], registry=registry)
        self.running = Gauge("machinery_tasks_running", "Tasks running now", registry=registry,
                             multiprocess_mode="livesum")
        self.up = Gauge("machinery_worker_up", "Worker processes consuming now", registry=registry,
                        multiprocess_mode="livesum")
        self._lock = threading.Lock()
        self._by_task: dict[str, tuple[Histogram, Counter]] = {}

    def __repr__(self) -> str:
        return "<WorkerMetrics>"

    def _children(self, task: str) -> tuple[Histogram, Counter]:
        children = self._by_task.get(task)
        if children is None:
            with self._lock:
                children = self._by_task.get(task)
                if children is None:
                    children = self._by_task[task] = (self.duration.labels(task), self.retries.labels(task))
        return children

    def on_start(self, call: TaskCall) -> None:
        self.running.inc()

    def after_run(self, call: TaskCall, outcome: Outcome) -> None:
        if outcome.ran:
            self.running.dec()
        name = call.signature.name
        state = outcome.state
        if outcome.ran and state in _RAN:
            duration, retries = self._children(name)
            duration.observe(outcome.duration)
            if state is TaskState.RETRY:
                retries.inc()
        if state in _FINAL:
            self.tasks.labels(name, state.value).inc()
        elif state is TaskState.PENDING:
            self.requeued.labels(name).inc()

    def on_dead_letter(self, queue: str, reason: str, signature: Signature | None) -> None:
        self.dead_letters.labels(queue).inc()

    def worker_started(self, worker: WorkerInfo) -> None:
        self.up.set(1)

    def worker_stopped(self, worker: WorkerInfo) -> None:
        self.up.set(0)


class QueueDepthCollector(Collector):
    """``machinery_queue_messages{queue,where}`` read from the broker at each scrape: ``where`` is
    ``ready``, ``delayed``, ``in_flight`` (left out where the broker cannot tell) or ``dead``."""

    def __init__(self, broker: Callable[[], Broker], queues: Sequence[str]) -> None:
        self._broker = broker
        self._queues = tuple(queues)

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("machinery_queue_messages", "Messages in each queue, by where they are",
                                   labels=["queue", "where"])
        for queue in self._queues:
            try:
                depth = self._broker().depth(queue)
            except Exception as exc:
                log.warning("metrics: could not read the depth of %s: %s", queue, exc)
                continue
            family.add_metric([queue, "ready"], depth.ready)
            family.add_metric([queue, "delayed"], depth.delayed)
            if depth.in_flight >= 0:
                family.add_metric([queue, "in_flight"], depth.in_flight)
            family.add_metric([queue, "dead"], depth.dead)
        yield family


def multiprocess_registry(directory: str) -> CollectorRegistry:
    """A registry holding the sum of what the worker processes wrote to ``directory``."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]  # untyped upstream
    return registry


def forget_process(pid: int, directory: str) -> None:
    """Drop the live gauges (tasks running, worker up) of the ended worker process ``pid``; its
    counters stay in the sum."""
    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]  # untyped upstream


class MetricsServer:
    """An HTTP server answering Prometheus scrapes of a registry, in a daemon thread."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The port it listens on (useful when it was started on port 0)."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics`` (port 0 picks a free one)."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    metrics_server = MetricsServer(server, thread)
    log.info("metrics at http://%s:%d/metrics", host, metrics_server.port)
    return metrics_server


def enable_metrics(app: App, port: int, host: str = "127.0.0.1", queues: Sequence[str] | None = None) -> MetricsServer:
    """Count ``app``'s tasks (a ``WorkerMetrics`` hook) and serve them, with the depth of ``queues``
    (default: the default queue), at ``http://host:port/metrics``. Close the server when done."""
    registry = CollectorRegistry()
    app.hooks.add(WorkerMetrics(registry))
    registry.register(QueueDepthCollector(lambda: app.broker, queues or [app.config.default_queue]))
    return serve_metrics(registry, port, host)
