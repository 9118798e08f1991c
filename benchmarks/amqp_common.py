"""What the RabbitMQ benchmarks share: the servers' URLs, one system's figures (``Row``: every
sample of every round, reported as medians), stopping a worker process, and deleting what a run
declared on the shared RabbitMQ and wrote to the shared Redis.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

import pika

__all__ = ["AMQP_URL", "REDIS_URL", "Row", "delete_declared", "delete_results", "percentile", "rabbitmq_version",
           "stop_process"]

AMQP_URL = os.environ.get("MACHINERY_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("MACHINERY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class Row:
    """One system's figures: each throughput round's rates, every latency sample and chain (in
    seconds); reported as medians."""

    name: str
    publishes: list[float] = field(default_factory=list)
    processes: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    chains: list[float] = field(default_factory=list)
    chains_unconfirmed: list[float] = field(default_factory=list)
    """raw pika only: its chain published without confirms (not at-least-once)."""
    notes: list[str] = field(default_factory=list)

    @property
    def publish(self) -> float | None:
        return _median(self.publishes)

    @property
    def process(self) -> float | None:
        return _median(self.processes)

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.latencies, 0.5) * 1000 if self.latencies else None

    @property
    def p99_ms(self) -> float | None:
        return percentile(self.latencies, 0.99) * 1000 if self.latencies else None

    @property
    def chain_ms(self) -> float | None:
        median = _median(self.chains)
        return None if median is None else median * 1000

    @property
    def chain_unconfirmed_ms(self) -> float | None:
        median = _median(self.chains_unconfirmed)
        return None if median is None else median * 1000

    def spread(self) -> str:
        """The processing rates of the rounds, lowest to highest (empty for fewer than two)."""
        if len(self.processes) < 2:
            return ""
        return "rounds " + "/".join(f"{v / 1000:.1f}k" for v in sorted(self.processes))


def rabbitmq_version() -> str:
    try:
        out = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True, timeout=20, check=True)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "? (rabbitmqctl not available)"


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a clean stop), then SIGKILL after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def delete_declared(*names: str, exchanges: Sequence[str] = ()) -> None:
    """Delete what a run declared on the shared RabbitMQ: its queues and exchanges."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    for name in names:
        channel.queue_delete(name)
    for name in exchanges:
        channel.exchange_delete(name)
    connection.close()


def delete_results(token: str) -> int:
    """Delete the keys a run wrote to the shared Redis (every key naming ``token``); how many."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"*{token}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start:start + 1000])
        return len(keys)
    finally:
        client.close()
