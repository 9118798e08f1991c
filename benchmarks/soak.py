"""Soak: many tasks through RabbitMQ to one worker process with results in Redis, sampling the
worker's resident memory (RSS) to see whether it grows with the number of tasks it has run.

The producer (this process) keeps at most ``--backlog`` messages waiting, so the worker's memory is
not measured against a queue that only grows. Every 20th task is a 3-step chain (callbacks
published by the worker), the others single ``add`` tasks; every result is stored in Redis with a
short expiry. RSS is read from ``/proc/<pid>/status`` every ``--interval`` seconds. The samples of
the first ``--warmup`` share of the tasks are dropped (imports, pools and buffers filling), and the
mean of the first 10% of the remaining samples is compared with the mean of the last 10%. The last
line is ``growth: X%``; the target is under 10%.

Run: ``.venv/bin/python -m benchmarks.soak [--tasks N]`` (default 200,000; RabbitMQ at
127.0.0.1:5672 and Redis at 127.0.0.1:6379, or ``MACHINERY_BENCH_AMQP_URL`` / ``MACHINERY_BENCH_REDIS_URL``).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchmarks.machine import describe, load
from machinery import App, AsyncResult, Chain, Config, Signature, chain, load_config

ROOT = Path(__file__).resolve().parent.parent
AMQP_URL = os.environ.get("MACHINERY_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("MACHINERY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

__all__ = ["app", "main"]

#: The worker's App (``-A benchmarks.soak:app``), configured from ``MACHINERY_*`` variables.
app = App(load_config()) if os.environ.get("MACHINERY_SOAK_WORKER") else App(Config(broker_url="memory://soak"))


@app.task(name="soak_add")
def soak_add(a: int, b: int) -> int:
    return a + b


@dataclass
class Sample:
    at: float
    sent: int
    rss_kib: int


def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid`` in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def growth(samples: list[Sample], total: int, warmup: float) -> tuple[float, float, float, int]:
    """(first-10% mean KiB, last-10% mean KiB, growth %, samples used) after the warm-up share."""
    kept = [s for s in samples if s.sent >= warmup * total and s.rss_kib > 0]
    if len(kept) < 10:
        raise SystemExit(f"only {len(kept)} samples after warm-up: run more tasks or sample more often")
    tenth = max(1, len(kept) // 10)
    first = statistics.fmean(s.rss_kib for s in kept[:tenth])
    last = statistics.fmean(s.rss_kib for s in kept[-tenth:])
    return first, last, (last - first) / first * 100.0, len(kept)


def _batch(start: int, count: int) -> list[Signature | Chain]:
    out: list[Signature | Chain] = []
    for i in range(start, start + count):
        if i % 20 == 19:
            out.append(chain(Signature("soak_add", [i, 1]), Signature("soak_add", [2]), Signature("soak_add", [3])))
        else:
            out.append(Signature("soak_add", [i, 1]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500, help="tasks per send_tasks call")
    parser.add_argument("--backlog", type=int, default=5_000, help="most messages left waiting in the queue")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=0.1, help="share of the tasks whose samples are dropped")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)

    token = uuid.uuid4().hex[:10]
    config = Config(broker_url=AMQP_URL, result_backend=REDIS_URL, exchange=f"soak-{token}",
                    default_queue=f"soak-{token}", binding_key=f"soak-{token}", results_expire_in=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACHINERY_")}
    env.update(PYTHONPATH=str(ROOT), MACHINERY_SOAK_WORKER="1", MACHINERY_BROKER_URL=config.broker_url,
               MACHINERY_RESULT_BACKEND=config.result_backend, MACHINERY_EXCHANGE=config.exchange,
               MACHINERY_DEFAULT_QUEUE=config.default_queue, MACHINERY_BINDING_KEY=config.binding_key,
               MACHINERY_RESULTS_EXPIRE_IN=str(config.results_expire_in))
    print(f"machine: {describe()}; load {load()}", flush=True)
    print(f"soak: {args.tasks} tasks (every 20th a 3-step chain), one worker (-c {args.concurrency}), "
          f"RabbitMQ {AMQP_URL.split('@')[-1]}, results in Redis", flush=True)

    worker = subprocess.Popen(
        [sys.executable, "-m", "machinery", "--log-level", "WARNING", "worker", "-A", "benchmarks.soak:app",
         "-c", str(args.concurrency)], env=env, cwd=ROOT)
    samples: list[Sample] = []
    sent = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(args.interval):
            samples.append(Sample(time.monotonic(), sent[0], rss_kib(worker.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.monotonic()
    try:
        with App(config) as producer:
            producer.broker.declare([config.default_queue])
            sampler.start()
            last_report = started
            last: list[AsyncResult] = []
            while sent[0] < args.tasks:
                if producer.broker.depth(config.default_queue).ready > args.backlog:
                    time.sleep(0.05)
                    continue
                count = min(args.batch, args.tasks - sent[0])
                last = producer.send_tasks(_batch(sent[0], count))
                sent[0] += count
                if worker.poll() is not None:
                    raise SystemExit(f"the worker exited with {worker.returncode}")
                if time.monotonic() - last_report > 10:
                    last_report = time.monotonic()
                    rss = samples[-1].rss_kib / 1024 if samples else 0.0
                    print(f"  {sent[0]:>8} sent, worker RSS {rss:.1f} MiB", flush=True)
            for result in last:
                result.get(timeout=300)
            while producer.broker.depth(config.default_queue).ready:
                time.sleep(0.2)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        _delete_topology(config)
    first, final, grown, used = growth(samples, args.tasks, args.warmup)
    print(f"{args.tasks} tasks in {elapsed:.1f}s ({args.tasks / elapsed:,.0f}/s); {used} RSS samples after warm-up; "
          f"worker RSS min {min(s.rss_kib for s in samples) / 1024:.1f} MiB, "
          f"max {max(s.rss_kib for s in samples) / 1024:.1f} MiB", flush=True)
    print(f"RSS after warm-up: first 10% {first / 1024:.1f} MiB, last 10% {final / 1024:.1f} MiB")
    print(f"growth: {grown:.1f}%")
    return 0


def _delete_topology(config: Config) -> None:
    """Remove the soak's exchange and queues from RabbitMQ (best effort)."""
    import pika

    from machinery.brokers.amqp_topology import DELAY_BUCKETS, delay_exchange, delay_queue
    from machinery.brokers.base import dead_letter_queue

    try:
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    except Exception:
        return
    try:
        channel = connection.channel()
        for name in [config.default_queue, dead_letter_queue(config.default_queue),
                     *(delay_queue(config.exchange, k) for k in range(DELAY_BUCKETS))]:
            channel.queue_delete(name)
        channel.exchange_delete(delay_exchange(config.exchange))
        channel.exchange_delete(config.exchange)
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
