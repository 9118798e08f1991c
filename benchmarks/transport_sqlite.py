"""Transport-level figures of the SQLite broker and result backend (no worker, no codec).

Measures, in one run so they compare as ratios: a bare WAL claim-and-delete loop (the issue's
baseline) and the broker's fetch+ack loop, both while another process inserts; publish rate;
publish -> fetch and set -> wait wake-up latency across processes; CPU of a consumer idle in
``fetch`` for 10 s; the result store's batched writes (``set_many`` of 32) keyed by random UUIDs
and by machinery's time-ordered task ids, in alternating rounds.
Run: ``.venv/bin/python -m benchmarks.transport_sqlite [--quick]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

from benchmarks.machine import describe, load
from machinery.backends.sqlite import SQLiteBackend
from machinery.brokers.base import OutgoingMessage
from machinery.brokers.sqlite import SQLiteBroker
from machinery.signature import new_task_id
from machinery.states import TaskResult, TaskState

ctx = multiprocessing.get_context("spawn")
BODY = b'{"UUID":"task_0123456789","Name":"noop","Args":[]}'


def machine() -> str:
    return describe(f"SQLite {sqlite3.sqlite_version}", f"load {load()}")


# -- helper processes ---------------------------------------------------------------------------


def insert_forever(db: str, table_sql: str, stop: Event) -> None:
    """Insert one row per transaction until ``stop`` (the 'another process inserts' load)."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    conn.execute("PRAGMA synchronous = NORMAL")
    while not stop.is_set():
        conn.execute(table_sql)
        time.sleep(0.0005)
    conn.close()


def publish_forever(db: str, stop: Event) -> None:
    broker = SQLiteBroker(db)
    while not stop.is_set():
        broker.publish("other", BODY)
        time.sleep(0.0005)
    broker.close()


def latency_consumer(db: str, count: int, ready: Event, out: Queue[list[float]]) -> None:
    broker = SQLiteBroker(db)
    broker.fetch(["warm"], 1, 0.01)
    ready.set()
    samples: list[float] = []
    while len(samples) < count:
        for d in broker.fetch(["lat"], 1, 10.0):
            samples.append((time.monotonic_ns() - int(d.body)) / 1e6)
            broker.ack(d)
    broker.close()
    out.put(samples)


def result_waiter(db: str, count: int, ready: Event, out: Queue[list[float]]) -> None:
    backend = SQLiteBackend(db)
    ready.set()
    samples: list[float] = []
    for i in range(count):
        result = backend.wait(f"task-{i}", 10.0)
        if result is not None and isinstance(result.result, int):
            samples.append((time.monotonic_ns() - result.result) / 1e6)
    backend.close()
    out.put(samples)


def idle_consumer(db: str, seconds: float, out: Queue[list[float]]) -> None:
    broker = SQLiteBroker(db)
    broker.fetch(["idle"], 1, 0.01)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    broker.fetch(["idle"], 1, seconds)
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    broker.close()
    out.put([cpu, elapsed])


# -- measurements -------------------------------------------------------------------------------


def bare_loop(tmp: Path, n: int) -> float:
    """Rows/s of a bare WAL loop claiming and deleting one row per transaction while another
    process inserts (synchronous=NORMAL)."""
    db = str(tmp / "bare.sqlite3")
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE q (id INTEGER PRIMARY KEY, queue TEXT, body BLOB)")
    conn.execute("CREATE TABLE other (id INTEGER PRIMARY KEY, body BLOB)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO q (queue, body) VALUES ('q', ?)", [(BODY,)] * n)
    conn.execute("COMMIT")
    stop = ctx.Event()
    inserter = ctx.Process(target=insert_forever, args=(db, "INSERT INTO other (body) VALUES (x'00')", stop))
    inserter.start()
    time.sleep(0.5)
    started = time.perf_counter()
    for _ in range(n):
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT id, body FROM q WHERE queue = 'q' ORDER BY id LIMIT 1").fetchone()
        conn.execute("DELETE FROM q WHERE id = ?", (row[0],))
        conn.execute("COMMIT")
    rate = n / (time.perf_counter() - started)
    stop.set()
    inserter.join()
    conn.close()
    return rate


def broker_loop(tmp: Path, n: int, batch: int, synchronous: str) -> float:
    """Messages/s of fetch(batch) + ack each, while another process publishes."""
    db = str(tmp / f"broker-{batch}-{synchronous}.sqlite3")
    broker = SQLiteBroker.from_url(f"sqlite:///{db}?synchronous={synchronous}")
    broker.publish_many([OutgoingMessage("q", BODY) for _ in range(n)])
    stop = ctx.Event()
    publisher = ctx.Process(target=publish_forever, args=(db, stop))
    publisher.start()
    time.sleep(0.5)
    done = 0
    started = time.perf_counter()
    while done < n:
        deliveries = broker.fetch(["q"], batch, 1.0)
        for d in deliveries:
            broker.ack(d)
        done += len(deliveries)
    rate = n / (time.perf_counter() - started)
    stop.set()
    publisher.join()
    broker.close()
    return rate


def publish_rate(tmp: Path, n: int, synchronous: str) -> float:
    db = str(tmp / f"publish-{synchronous}.sqlite3")
    broker = SQLiteBroker.from_url(f"sqlite:///{db}?synchronous={synchronous}")
    started = time.perf_counter()
    for _ in range(n):
        broker.publish("q", BODY)
    rate = n / (time.perf_counter() - started)
    broker.close()
    return rate


def wake_latency(tmp: Path, count: int) -> list[float]:
    db = str(tmp / "latency.sqlite3")
    broker = SQLiteBroker(db)
    ready, out = ctx.Event(), ctx.Queue()
    consumer = ctx.Process(target=latency_consumer, args=(db, count, ready, out))
    consumer.start()
    ready.wait(30)
    time.sleep(0.3)
    for _ in range(count):
        broker.publish("lat", str(time.monotonic_ns()).encode())
        time.sleep(0.005)
    samples: list[float] = out.get(timeout=60)
    consumer.join()
    broker.close()
    return samples


def result_latency(tmp: Path, count: int) -> list[float]:
    db = str(tmp / "results.sqlite3")
    backend = SQLiteBackend(db)
    ready, out = ctx.Event(), ctx.Queue()
    waiter = ctx.Process(target=result_waiter, args=(db, count, ready, out))
    waiter.start()
    ready.wait(30)
    for i in range(count):
        time.sleep(0.005)
        backend.set(TaskResult(f"task-{i}", TaskState.SUCCESS, result=time.monotonic_ns()))
    samples: list[float] = out.get(timeout=60)
    waiter.join()
    backend.close()
    return samples


def _random_task_id() -> str:
    return f"task_{uuid.uuid4()}"


def result_batches(tmp: Path, n: int, new_id: Callable[[], str], name: str) -> tuple[float, float]:
    """(CPU µs, wall µs) per result of ``n`` results written with ``set_many`` in batches of 32
    (as a worker's settler writes them) into a fresh result store, ids made by ``new_id``."""
    backend = SQLiteBackend(str(tmp / f"ids-{name}.sqlite3"))
    batches = [[TaskResult(new_id(), TaskState.SUCCESS, "noop", result=1) for _ in range(32)]
               for _ in range(n // 32)]
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in batches:
        backend.set_many(batch)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    backend.close()
    count = 32 * len(batches)
    return cpu / count * 1e6, wall / count * 1e6


def idle_cpu(tmp: Path, seconds: float) -> tuple[float, float]:
    out: Queue[list[float]] = ctx.Queue()
    process = ctx.Process(target=idle_consumer, args=(str(tmp / "idle.sqlite3"), seconds, out))
    process.start()
    cpu, elapsed = out.get(timeout=seconds + 30)
    process.join()
    return cpu, elapsed


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):.3f} ms, p99 {p99:.3f} ms, max {ordered[-1]:.3f} ms (n={len(ordered)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer messages, 2 s idle measurement")
    args = parser.parse_args(argv)
    n = 5_000 if args.quick else 20_000
    print(machine())
    with tempfile.TemporaryDirectory(prefix="mtb") as name:
        tmp = Path(name)
        bare = bare_loop(tmp, n)
        print(f"bare WAL claim+delete loop (NORMAL, other process inserting): {bare:,.0f} rows/s")
        for synchronous in ("NORMAL", "FULL"):
            for batch in (1, 16):
                rate = broker_loop(tmp, n, batch, synchronous)
                print(
                    f"broker fetch({batch:>2}) + ack each ({synchronous}, other process publishing): "
                    f"{rate:,.0f} msgs/s = {rate / bare:.2f} x bare"
                )
        for synchronous in ("NORMAL", "FULL"):
            print(f"publish one per call ({synchronous}): {publish_rate(tmp, n, synchronous):,.0f} msgs/s")
        print(f"publish -> blocked fetch in another process: {percentiles(wake_latency(tmp, 300))}")
        print(f"set(final) -> blocked wait in another process: {percentiles(result_latency(tmp, 300))}")
        ids: dict[str, list[tuple[float, float]]] = {"random UUIDs": [], "machinery's task ids": []}
        for _ in range(3):  # alternating rounds
            ids["random UUIDs"].append(result_batches(tmp, 2 * n, _random_task_id, f"random-{_}"))
            ids["machinery's task ids"].append(result_batches(tmp, 2 * n, new_task_id, f"ordered-{_}"))
        for kind, runs in ids.items():
            cpu_us = statistics.median(c for c, _ in runs)
            wall_us = statistics.median(w for _, w in runs)
            print(f"result store, set_many of 32 x {2 * n // 32:,} keyed by {kind}: "
                  f"{cpu_us:.1f} µs CPU, {wall_us:.1f} µs per result (median of 3)")
        by_random = statistics.median(w for _, w in ids["random UUIDs"])
        by_ordered = statistics.median(w for _, w in ids["machinery's task ids"])
        print(f"  time per result, random / time-ordered ids: {by_random / by_ordered:.2f}")
        seconds = 2.0 if args.quick else 10.0
        cpu, elapsed = idle_cpu(tmp, seconds)
        share = 100 * cpu / elapsed
        print(f"consumer idle in fetch for {elapsed:.1f} s: {cpu * 1000:.1f} ms CPU = {share:.3f} % of a core")
    print(machine())
    return 0


if __name__ == "__main__":
    sys.exit(main())
