"""Celery and Dramatiq on the same RabbitMQ as machinery, each with one worker process, without
results and with their Redis result stores (Celery's Redis result backend, Dramatiq's Results
middleware). Their worker processes import this module: ``celery_app`` for Celery's, and the
actor below, defined when ``BENCH_DRAMATIQ_QUEUE`` is set, for Dramatiq's.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from benchmarks.amqp_common import AMQP_URL, REDIS_URL, Row, delete_declared, stop_process
from benchmarks.machine import ROOT, child_env
from benchmarks.side_channel import SideChannel, done

__all__ = ["celery_row", "dramatiq_row"]


def __getattr__(name: str) -> Any:
    """``celery_app``: made on first access (in this process and in Celery's worker process)."""
    if name == "celery_app":
        celery: Any = importlib.import_module("celery")
        stored = bool(os.environ.get("BENCH_RESULTS"))
        capp = celery.Celery("bench", broker=AMQP_URL.replace("amqp://", "pyamqp://"),
                             backend=REDIS_URL if stored else None)
        capp.conf.update(
            task_acks_late=True,
            worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "4")),
            task_ignore_result=not stored,
            broker_transport_options={"confirm_publish": True},
            task_default_queue=os.environ.get("BENCH_QUEUE", "celery-bench"),
            worker_hijack_root_logger=False,
        )

        @capp.task(name="noop")  # type: ignore[untyped-decorator]
        def cnoop() -> int:
            done()
            return 1

        globals()["celery_app"] = capp
        return capp
    raise AttributeError(name)


def _dramatiq_broker(url: str, *, results: bool, **options: Any) -> Any:
    """A Dramatiq RabbitMQ broker, with the Results middleware on Redis when ``results``."""
    broker = importlib.import_module("dramatiq.brokers.rabbitmq").RabbitmqBroker(url=url, **options)
    if results:
        middleware = importlib.import_module("dramatiq.results")
        backends = importlib.import_module("dramatiq.results.backends")
        broker.add_middleware(middleware.Results(backend=backends.RedisBackend(url=REDIS_URL)))
    return broker


if os.environ.get("BENCH_DRAMATIQ_QUEUE"):  # imported by the dramatiq command in its worker process
    _dramatiq: Any = importlib.import_module("dramatiq")
    _stored = bool(os.environ.get("BENCH_RESULTS"))
    _dramatiq.set_broker(_dramatiq_broker(AMQP_URL, results=_stored))

    @_dramatiq.actor(queue_name=os.environ["BENCH_DRAMATIQ_QUEUE"], max_retries=0,  # type: ignore[untyped-decorator]
                     **({"store_results": True} if _stored else {}))
    def dnoop() -> int:
        done()
        return 1


def _time_peer_worker(row: Row, command: list[str], env: dict[str, str], n: int, channel: SideChannel) -> None:
    """Run a peer's worker process until the side channel reports its ``n``-th completion (or 600 s
    passed), record its processing rate in ``row``, and stop it."""
    env = {**env, **channel.env(n)}
    worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if channel.wait_for(2, 600):
            row.processes.append((n - 1) / (channel.times[1] - channel.times[0]))
        else:
            row.notes.append(f"not all {n} done in 600 s")
    finally:
        stop_process(worker)


def celery_row(n: int, channel: SideChannel, *, stored: bool = False) -> Row | None:
    """Celery with ``acks_late`` and 4 threads; with ``stored``, its worker keeps results in Redis
    (the Redis result backend; tasks are sent by an app without one, as a producer that does not wait)."""
    if importlib.util.find_spec("celery") is None:
        return None
    queue = f"celery-bench-{uuid.uuid4().hex[:8]}"
    os.environ["BENCH_QUEUE"] = queue
    row = Row(f"Celery (acks_late, threads x4){', results in Redis' if stored else ''}")
    # One producer app for every Celery row (a second app registering "noop" again makes Celery warn).
    capp: Any = globals().get("celery_app") or __getattr__("celery_app")
    capp.conf.task_default_queue = queue
    task = capp.tasks["noop"]
    started = time.perf_counter()
    with capp.producer_or_acquire() as producer:
        for _ in range(n):
            task.apply_async(producer=producer)
    row.publishes.append(n / (time.perf_counter() - started))
    channel.reset()
    try:
        _time_peer_worker(
            row,
            [sys.executable, "-m", "celery", "-A", "benchmarks.amqp_peers:celery_app", "worker", "-P",
             "threads", "-c", "4", "-Q", queue, "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            child_env(BENCH_QUEUE=queue,
                      **({"BENCH_RESULTS": "1"} if stored else {})),
            n, channel,
        )
    finally:
        delete_declared(queue)
    return row


def dramatiq_row(n: int, channel: SideChannel, *, stored: bool = False) -> Row | None:
    """Dramatiq with 8 threads; with ``stored``, the Results middleware keeps results in Redis."""
    if importlib.util.find_spec("dramatiq") is None:
        return None
    queue = f"dramatiq-bench-{uuid.uuid4().hex[:8]}"
    row = Row(f"Dramatiq (threads x8){', Results in Redis' if stored else ''}")
    dramatiq: Any = importlib.import_module("dramatiq")
    broker = _dramatiq_broker(AMQP_URL, results=stored, confirm_delivery=True)
    dramatiq.set_broker(broker)

    @dramatiq.actor(queue_name=queue, max_retries=0,  # type: ignore[untyped-decorator]
                    **({"store_results": True} if stored else {}))
    def dnoop() -> int:
        done()
        return 1

    started = time.perf_counter()
    for _ in range(n):
        dnoop.send()
    row.publishes.append(n / (time.perf_counter() - started))
    broker.close()
    channel.reset()
    try:
        _time_peer_worker(
            row,
            [sys.executable, "-m", "dramatiq", "benchmarks.amqp_peers", "--processes", "1", "--threads", "8"],
            child_env(BENCH_DRAMATIQ_QUEUE=queue,
                      **({"BENCH_RESULTS": "1"} if stored else {})),
            n, channel,
        )
    finally:
        delete_declared(queue, f"{queue}.DQ", f"{queue}.XQ")
    return row
