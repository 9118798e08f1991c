"""End-to-end throughput of machinery on its embedded SQLite broker, compared with Huey on SQLite
at the same durability and with a bare WAL claim-and-delete loop, all in one run.

No-op tasks, one worker process (default settings: 4 threads, prefetch 32), results off and on. Prints tasks/s
for sending and for processing, p50/p99 latency from send to result, the CPU an idle worker uses,
the SQLite ``synchronous`` level, the machine and its load. Completions are timed by a side
channel (``side_channel``: a task writes the time of its completion to a FIFO at the first
completion and at the N-th, so no run pays a write per task), not by queue depth.

Run: ``.venv/bin/python -m benchmarks.throughput [--tasks N] [--quick] [--repeat R] [--broker sqlite|amqp]``
(Huey is in the ``bench`` extra; without it, its rows are skipped).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import multiprocessing
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.machine import ROOT, child_env, describe, load
from benchmarks.side_channel import SideChannel
from machinery import App, Config, Signature

SYNCHRONOUS = "NORMAL"
"""The durability of every SQLite figure here: WAL with synchronous=NORMAL (machinery's default;
Huey is set to the same; a commit survives a process crash, the last ones may be lost on power loss)."""


def machine() -> str:
    return describe(f"SQLite {sqlite3.sqlite_version}", f"codec {'compiled' if _using_extensions() else 'pure Python'}")


def _using_extensions() -> bool:
    from machinery import USING_EXTENSIONS

    return USING_EXTENSIONS


def start_process(argv: list[str], extra_env: dict[str, str], channel: SideChannel | None = None,
                  expect: int = 0) -> subprocess.Popen[bytes]:
    """Start a worker process; with ``channel``, its tasks report their first and ``expect``-th completion."""
    report = channel.env(expect) if channel is not None else {}
    return subprocess.Popen(argv, cwd=ROOT, env=child_env(**extra_env, **report))


def new_channel(tmp: Path) -> SideChannel:
    return SideChannel(Path(tempfile.mkdtemp(dir=tmp)))


def rate(channel: SideChannel, n: int, what: str) -> float:
    """Completions per second from the first to the ``n``-th, once the worker reported both."""
    if not channel.wait_for(2, timeout=300):
        raise RuntimeError(f"{what} did not process all {n} tasks in 300 s")
    first, last = channel.times[:2]
    return (n - 1) / (last - first)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return p50, p99


# -- machinery ------------------------------------------------------------------------------------


def machinery_env(url: str, results: bool) -> dict[str, str]:
    return {"MACHINERY_BROKER_URL": url, "MACHINERY_RESULT_BACKEND": url if results else "none"}


def machinery_worker(url: str, results: bool, channel: SideChannel | None = None,
                     expect: int = 0) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "machinery", "--log-level", "WARNING", "worker", "-A",
            "benchmarks.throughput_apps:app"]
    return start_process(argv, machinery_env(url, results), channel, expect)


def bench_machinery(tmp: Path, n: int, *, results: bool) -> tuple[float, float, float]:
    """(send tasks/s one by one, send tasks/s in batches of 100, processing tasks/s)."""
    url = f"sqlite:///{tmp / f'machinery-{results}.sqlite3'}"
    config = Config(broker_url=url, result_backend=url if results else "none")
    with App(config) as app:
        sig = Signature("noop", [])
        started = time.perf_counter()
        for _ in range(n):
            app.send_task(sig.replace(uuid=None))
        send_rate = n / (time.perf_counter() - started)
        started = time.perf_counter()
        for i in range(0, n, 100):
            app.send_tasks([sig.replace(uuid=None) for _ in range(min(100, n - i))])
        batch_rate = n / (time.perf_counter() - started)
        total = 2 * n
        proc = machinery_worker(url, results, channel := new_channel(tmp), total)
        try:
            processing = rate(channel, total, "machinery")
        finally:
            stop_process(proc)
        return send_rate, batch_rate, processing


def machinery_latency(tmp: Path, samples: int) -> tuple[float, float]:
    """p50, p99 seconds from send to result, default settings (results in SQLite)."""
    url = f"sqlite:///{tmp / 'machinery-latency.sqlite3'}"
    proc = machinery_worker(url, True)
    try:
        with App(Config(broker_url=url, result_backend=url)) as app:
            app.send_task(Signature("noop", [])).get(timeout=30)  # warm up
            times = []
            for _ in range(samples):
                started = time.perf_counter()
                app.send_task(Signature("noop", [])).get(timeout=30)
                times.append(time.perf_counter() - started)
    finally:
        stop_process(proc)
    return percentiles(times)


def machinery_idle_cpu(tmp: Path, seconds: float) -> float:
    """Percent of one core a worker uses while its queue stays empty."""
    url = f"sqlite:///{tmp / 'machinery-idle.sqlite3'}"
    proc = machinery_worker(url, True)
    try:
        time.sleep(1.5)
        before = cpu_seconds(proc.pid)
        time.sleep(seconds)
        used = cpu_seconds(proc.pid) - before
    finally:
        stop_process(proc)
    return 100.0 * used / seconds


# -- Huey -------------------------------------------------------------------------------------------


def huey_available() -> bool:
    return importlib.util.find_spec("huey") is not None


def huey_consumer(db: str, results: bool, channel: SideChannel | None = None,
                  expect: int = 0) -> subprocess.Popen[bytes]:
    env = {"BENCH_HUEY_DB": db, "BENCH_HUEY_RESULTS": "1" if results else "0", "BENCH_SYNC": SYNCHRONOUS}
    code = "from benchmarks.throughput_apps import run_huey_consumer; run_huey_consumer()"
    return start_process([sys.executable, "-c", code], env, channel, expect)


def bench_huey(tmp: Path, n: int, *, results: bool) -> tuple[float, float]:
    """(enqueue tasks/s one by one, processing tasks/s)."""
    from benchmarks.throughput_apps import huey_instance

    db = str(tmp / f"huey-{results}.db")
    huey = huey_instance(db, results=results, synchronous=SYNCHRONOUS)
    started = time.perf_counter()
    for _ in range(n):
        huey.noop()
    send_rate = n / (time.perf_counter() - started)
    proc = huey_consumer(db, results, channel := new_channel(tmp), n)
    try:
        processing = rate(channel, n, "Huey")
    finally:
        stop_process(proc)
    return send_rate, processing


def huey_latency(tmp: Path, samples: int) -> tuple[float, float]:
    from benchmarks.throughput_apps import huey_instance

    db = str(tmp / "huey-latency.db")
    huey = huey_instance(db, results=True, synchronous=SYNCHRONOUS)
    proc = huey_consumer(db, True)
    try:
        huey.noop().get(blocking=True, timeout=30)
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            huey.noop().get(blocking=True, timeout=30)
            times.append(time.perf_counter() - started)
    finally:
        stop_process(proc)
    return percentiles(times)


# -- bare SQLite ------------------------------------------------------------------------------------


def _bare_producer(path: str, stop_at: float) -> None:
    """One row per transaction, paced (the 'another process inserts' load)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute(f"pragma synchronous={SYNCHRONOUS}")
    while time.time() < stop_at:
        conn.execute("insert into other(body) values (x'00')")
        time.sleep(0.0005)
    conn.close()


def bench_bare_wal(tmp: Path, n: int) -> float:
    """Rows/s claimed and deleted one per transaction at the same durability, while another
    process inserts (the floor any SQLite queue pays per message)."""
    path = str(tmp / "bare.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("pragma journal_mode=wal")
    conn.execute(f"pragma synchronous={SYNCHRONOUS}")
    conn.execute("create table q (id integer primary key, queue text, body blob not null)")
    conn.execute("create table other (id integer primary key, body blob)")
    conn.execute("begin")
    conn.executemany("insert into q(queue, body) values ('q', ?)", [(b'{"Name":"noop","Args":[]}',)] * n)
    conn.execute("commit")
    producer = multiprocessing.get_context("spawn").Process(target=_bare_producer, args=(path, time.time() + 600))
    producer.start()
    time.sleep(0.5)
    try:
        started = time.perf_counter()
        for _ in range(n):
            conn.execute("begin immediate")
            row = conn.execute("select id, body from q where queue = 'q' order by id limit 1").fetchone()
            conn.execute("delete from q where id = ?", (row[0],))
            conn.execute("commit")
        elapsed = time.perf_counter() - started
    finally:
        producer.terminate()
        producer.join()
        conn.close()
    return n / elapsed


def repeat_processing(n: int, runs: int, first: tuple[float, float, float]) -> None:
    """Repeat the bare loop and machinery's processing with results off and on, in that order
    each run; best and median rates, and the median of each run's own ratios."""
    triples = [first]
    print(f"repeating bare loop + machinery processing (results off, then on), {runs} runs in all:")
    for _ in range(runs - 1):
        with tempfile.TemporaryDirectory(prefix="machinery-bench-") as tmp_name:
            tmp = Path(tmp_name)
            bare = bench_bare_wal(tmp, max(n, 5000))
            off = bench_machinery(tmp, n, results=False)[2]
            on = bench_machinery(tmp, n, results=True)[2]
            triples.append((bare, off, on))
        print(f"  run {len(triples)}: bare {bare:,.0f}/s, machinery results off {off:,.0f}/s, on {on:,.0f}/s "
              f"(load {load()})")
    offs = [off for _, off, _ in triples]
    print(f"  machinery processing, results off: best {max(offs):,.0f}/s, median {statistics.median(offs):,.0f}/s")
    to_bare = [off / bare for bare, off, _ in triples]
    print(f"  / bare WAL loop in the same run: best {max(to_bare):.2f}, median {statistics.median(to_bare):.2f}"
          "  (aim >= 0.5)")
    on_off = [on / off for _, off, on in triples]
    print(f"  results on / off in the same run: {', '.join(f'{r:.2f}' for r in on_off)}; "
          f"median {statistics.median(on_off):.2f}  (aim >= 0.6)")


# -- main -------------------------------------------------------------------------------------------


def _amqp(argv: Sequence[str]) -> int:
    try:
        module: Any = importlib.import_module("benchmarks.throughput_amqp")
    except ImportError as exc:
        print(f"benchmarks.throughput_amqp is missing ({exc}); no AMQP figures", file=sys.stderr)
        return 2
    main_fn: Callable[[Sequence[str]], int | None] = module.main
    return int(main_fn(list(argv)) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--broker", choices=["sqlite", "amqp"], default="sqlite")
    parser.add_argument("--tasks", type=int, default=5000, help="tasks per throughput run (default 5000)")
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="fewer tasks and samples")
    parser.add_argument(
        "--repeat", type=int, default=1,
        help="run the bare loop and machinery's processing (results off, then on) this many times; prints best and "
             "median rates and the median of each run's ratios",
    )
    args, rest = parser.parse_known_args(args_list)
    if args.broker == "amqp":
        return _amqp([a for a in args_list if not a.startswith("--broker") and a != "amqp"])
    if rest:
        parser.error(f"unknown arguments: {' '.join(rest)}")
    if args.tasks < 2 or args.latency_samples < 1:
        parser.error("--tasks must be at least 2 (a rate runs from the first completion to the last) "
                     "and --latency-samples at least 1")
    n = 1000 if args.quick else args.tasks
    samples = 100 if args.quick else args.latency_samples

    print(f"machine: {machine()}")
    print(f"load before: {load()}")
    print(f"SQLite durability everywhere: WAL, synchronous={SYNCHRONOUS}; one worker process, defaults; {n} tasks")
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="machinery-bench-") as tmp_name:
        tmp = Path(tmp_name)
        bare = bench_bare_wal(tmp, max(n, 5000))
        rows.append(("bare WAL claim+delete loop (rows/s)", f"{bare:,.0f}"))
        m_off = bench_machinery(tmp, n, results=False)
        m_on = bench_machinery(tmp, n, results=True)
        rows += [
            ("machinery send, one by one (tasks/s)", f"{m_off[0]:,.0f}"),
            ("machinery send, batches of 100 (tasks/s)", f"{m_off[1]:,.0f}"),
            ("machinery processing, results off (tasks/s)", f"{m_off[2]:,.0f}"),
            ("machinery processing, results on (tasks/s)", f"{m_on[2]:,.0f}"),
        ]
        m_lat = machinery_latency(tmp, samples)
        rows.append(("machinery send->result latency p50 / p99 (ms)", f"{m_lat[0] * 1e3:.2f} / {m_lat[1] * 1e3:.2f}"))
        idle = machinery_idle_cpu(tmp, 5.0)
        rows.append(("machinery idle worker CPU (% of a core)", f"{idle:.2f}"))
        h_off = h_on = h_lat = None
        if huey_available():
            h_off = bench_huey(tmp, n, results=False)
            h_on = bench_huey(tmp, n, results=True)
            h_lat = huey_latency(tmp, min(samples, 100))
            rows += [
                ("Huey enqueue, one by one (tasks/s)", f"{h_off[0]:,.0f}"),
                ("Huey processing, results off (tasks/s)", f"{h_off[1]:,.0f}"),
                ("Huey processing, results on (tasks/s)", f"{h_on[1]:,.0f}"),
                ("Huey send->result latency p50 / p99 (ms)", f"{h_lat[0] * 1e3:.2f} / {h_lat[1] * 1e3:.2f}"),
            ]
        else:
            rows.append(("Huey", "not installed (pip install '.[bench]')"))
    width = max(len(label) for label, _ in rows)
    print()
    for label, value in rows:
        print(f"  {label:<{width}}  {value:>18}")
    print("\nratios (same run):")
    print(f"  machinery processing (results off) / bare WAL loop: {m_off[2] / bare:.2f}  (aim >= 0.5)")
    print(f"  machinery processing, results on / results off:    {m_on[2] / m_off[2]:.2f}  (aim >= 0.6)")
    if h_off is not None and h_on is not None and h_lat is not None:
        print(f"  machinery / Huey processing, results off: {m_off[2] / h_off[1]:.2f}  (aim >= 1)")
        print(f"  machinery / Huey processing, results on:  {m_on[2] / h_on[1]:.2f}  (aim >= 1)")
        print(f"  machinery / Huey send one by one:         {m_off[0] / h_off[0]:.2f}")
        print(f"  Huey / machinery p50 latency:             {h_lat[0] / m_lat[0]:.1f}")
    print(f"  machinery p50 latency {m_lat[0] * 1e3:.2f} ms (aim < 5 ms); idle CPU {idle:.2f}% (aim < 1%)")
    if args.repeat > 1:
        repeat_processing(n, args.repeat, (bare, m_off[2], m_on[2]))
    print(f"load after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
