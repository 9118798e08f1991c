"""Throughput and latency of machinery on RabbitMQ, with raw pika (the ceiling), Celery
(``acks_late``) and Dramatiq as references, all in one run against the same RabbitMQ.

No-op tasks, N of them (``--tasks``, default 20,000), one worker process. For each system:
publish rate with publisher confirms (machinery: batched ``send_tasks``), then processing rate
from a full queue, timed by a side channel rather than queue depth (a FIFO that the task process
writes one byte to at its first and its N-th completion and at every one after those), p50/p99
send-to-result latency and a 10-step chain's latency. machinery runs with results not stored, then
stored in Redis; Celery and Dramatiq run without results, then with their Redis result stores
(Celery's Redis result backend, Dramatiq's Results middleware). A "one follow-up per task" row
(each task's ``on_success`` sends one more task; every task run counted) is measured for machinery
and for raw pika, and the worker's resident memory after ``--memory-tasks`` tasks with results in
Redis. Prints a table with ratios to raw pika, the issue's targets as same-run ratios, the machine
and its load, and writes a PNG chart to ``benchmarks/results/``.

Run: ``.venv/bin/python -m benchmarks.throughput_amqp [--tasks N] [--quick] [--skip-peers] [--skip-stored]
[--skip-follow-ups] [--memory-tasks N]``
(also ``benchmarks/throughput.py --broker amqp``). Celery, Dramatiq and matplotlib come from the
``bench`` extra; a missing one is skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from benchmarks.machine import ROOT, child_env, describe, load, wait_until

AMQP_URL = os.environ.get("MACHINERY_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("MACHINERY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
FIFO_ENV = "BENCH_FIFO"
#: 10-step chains timed per system (the median is reported).
CHAINS = 100
EXPECT_ENV = "BENCH_EXPECT"

__all__ = ["main"]


# -- the side channel ---------------------------------------------------------------------------

_fifo: list[int] = []
_expect: list[int] = []
_completions = itertools.count(1)


def done() -> None:
    """Called by every benchmark task: one byte into the FIFO named by ``BENCH_FIFO`` at the first
    completion, at the ``BENCH_EXPECT``-th and at each one after it (so a throughput run is timed
    without a write per task, in every system alike; latency samples are timed one by one)."""
    if not _fifo:
        path = os.environ.get(FIFO_ENV)
        if not path:
            return
        _expect.append(int(os.environ.get(EXPECT_ENV, "0")))
        _fifo.append(os.open(path, os.O_WRONLY))
    n = next(_completions)  # atomic under the GIL, whichever thread runs the task
    if 1 < n < _expect[0]:
        return
    os.write(_fifo[0], b"x")


class SideChannel:
    """Counts completions written to a FIFO by any process, with the time of each."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "done.fifo"
        os.mkfifo(self.path)
        self._fd = os.open(self.path, os.O_RDWR)  # never sees EOF while writers come and go
        self.times: list[float] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                return
            now = time.perf_counter()
            with self._cond:
                self.times.extend([now] * len(chunk))
                self._cond.notify_all()

    def wait_for(self, n: int, timeout: float) -> bool:
        return wait_until(self._cond, lambda: len(self.times) >= n, timeout)

    def reset(self) -> None:
        with self._cond:
            self.times.clear()


# -- apps the worker processes import (built on first access, from the environment) ------------


def __getattr__(name: str) -> Any:
    """``app`` (machinery), ``celery_app`` (Celery): made on first access inside worker processes."""
    if name == "app":
        from machinery import App, load_config

        machinery_app = App(load_config())

        @machinery_app.task(name="noop")
        def noop() -> int:
            done()
            return 1

        globals()["app"] = machinery_app
        return machinery_app
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


# -- figures ----------------------------------------------------------------------------------


@dataclass
class Row:
    """One system's figures; None where not measured."""

    name: str
    publish: float | None = None
    process: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    chain_ms: float | None = None
    chain_unconfirmed_ms: float | None = None
    """raw pika only: its chain published without confirms (not at-least-once)."""
    notes: list[str] = field(default_factory=list)


def machine() -> str:
    from machinery import USING_EXTENSIONS

    return describe(f"pika {pika.__version__}", f"codec {'compiled' if USING_EXTENSIONS else 'pure Python'}")


def rabbitmq_version() -> str:
    try:
        out = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True, timeout=20, check=True)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "? (rabbitmqctl not available)"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _delete_queues(*names: str, exchanges: Sequence[str] = ()) -> None:
    """Delete what a run declared on the shared RabbitMQ: its queues and exchanges."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    for name in names:
        channel.queue_delete(name)
    for name in exchanges:
        channel.exchange_delete(name)
    connection.close()


# -- raw pika: the ceiling ------------------------------------------------------------------------


class _RawPika:
    """One SelectConnection driven to completion in this thread for one measurement."""

    def __init__(self) -> None:
        self.connection = SelectConnection(
            pika.URLParameters(AMQP_URL),
            on_open_callback=self._opened,
            on_close_callback=lambda _c, _e: self.connection.ioloop.stop(),
        )
        self.channel: Channel | None = None
        self.on_channel: Callable[[Channel], None] = lambda ch: None

    def _opened(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self._channel_opened)

    def _channel_opened(self, channel: Channel) -> None:
        self.channel = channel
        self.on_channel(channel)

    def run(self, on_channel: Callable[[Channel], None]) -> None:
        self.on_channel = on_channel
        self.connection.ioloop.start()

    def finish(self) -> None:
        """Close cleanly (pending acks are flushed first); the loop stops once it is closed."""
        self.connection.close()


def raw_pika(n: int) -> Row:
    """Publish n with pipelined confirms, consume them with manual acks (prefetch 100), and a
    10-hop chain where each delivery publishes the next message."""
    row = Row("raw pika")
    queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    props = BasicProperties(delivery_mode=2)
    from machinery import Signature, encode

    body = encode(Signature("noop", [], immutable=True))  # the same bytes machinery sends
    times: dict[str, float] = {}

    def publish(ch: Channel) -> None:
        acked = [0]

        def on_confirm(frame: Any) -> None:
            method = frame.method
            acked[0] = method.delivery_tag if method.multiple else acked[0] + 1
            if acked[0] >= n:
                times["published"] = time.perf_counter()
                client.finish()

        def declared(_f: Any) -> None:
            times["start"] = time.perf_counter()
            for _ in range(n):
                ch.basic_publish("", queue, body, props)

        ch.confirm_delivery(on_confirm, callback=lambda _f: ch.queue_declare(queue, durable=True, callback=declared))

    client = _RawPika()
    client.run(publish)
    row.publish = n / (times["published"] - times["start"])

    row.process = _raw_consume(queue, n)

    # The reference chain publishes each step in confirm mode, as any at-least-once chain must (a step
    # published unconfirmed may be lost); persistent messages in confirm mode cost RabbitMQ itself time
    # per hop. The unconfirmed chain is measured too, and printed beside it.
    row.chain_ms = _raw_chain(queue, body, props, confirms=True)
    row.chain_unconfirmed_ms = _raw_chain(queue, body, props, confirms=False)
    row.notes.append(f"chain10 without publisher confirms: {row.chain_unconfirmed_ms:.1f} ms")
    _delete_queues(queue)
    return row


def _raw_consume(queue: str, total: int, *, follow_up: tuple[bytes, bytes] | None = None) -> float:
    """Consume ``total`` messages of ``queue`` (prefetch 100, manual acks, one SelectConnection in
    this thread); messages/s from the first to the last. With ``follow_up`` = (body, follow), each
    message whose body is ``body`` first publishes ``follow`` (on a channel in confirm mode; nobody
    waits for the confirm)."""
    times: dict[str, float] = {}
    props = BasicProperties(delivery_mode=2)

    def consume(ch: Channel) -> None:
        got = [0]

        def on_message(c: Channel, method: Basic.Deliver, _p: BasicProperties, message: bytes) -> None:
            if got[0] == 0:
                times["first"] = time.perf_counter()
            got[0] += 1
            if follow_up is not None and message == follow_up[0]:
                c.basic_publish("", queue, follow_up[1], props)
            c.basic_ack(method.delivery_tag or 0)
            if got[0] >= total:
                times["last"] = time.perf_counter()
                client.finish()

        def start(_f: object = None) -> None:
            ch.basic_qos(prefetch_count=100, callback=lambda _g: ch.basic_consume(queue, on_message))

        if follow_up is not None:
            ch.confirm_delivery(lambda _f: None, callback=start)
        else:
            start()

    client = _RawPika()
    client.run(consume)
    return (total - 1) / (times["last"] - times["first"])


def raw_pika_follow_ups(n: int) -> Row:
    """n messages consumed (prefetch 100, manual acks), each publishing one follow-up message on a
    channel in confirm mode (as machinery's tasks do) and acked; the rate counts all 2n consumed."""
    row = Row("raw pika, one follow-up per task")
    queue = f"bench-raw-f-{uuid.uuid4().hex[:8]}"
    props = BasicProperties(delivery_mode=2)
    from machinery import Signature, encode

    body = encode(Signature("noop", [], immutable=True))
    follow = encode(Signature("noop", [], immutable=True, routing_key="f"))  # same size, told apart
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    channel.confirm_delivery()
    for _ in range(n):
        channel.basic_publish("", queue, body, props)
    connection.close()
    row.process = _raw_consume(queue, 2 * n, follow_up=(body, follow))
    row.notes.append(f"{n:,} tasks + {n:,} follow-ups counted")
    _delete_queues(queue)
    return row


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machinery_memory(n: int, channel: SideChannel, *, prefetch: int, batch: int) -> str:
    """Worker resident memory after processing n tasks with results stored in Redis."""
    from machinery import App, Signature

    token, config, env = _machinery_setup(REDIS_URL, prefetch, channel, n + 1)
    queue = config.default_queue
    app = App(config)
    noop = Signature("noop", [], immutable=True)
    try:
        app.broker.declare([queue])
        channel.reset()
        worker = subprocess.Popen(
            [sys.executable, "-m", "machinery", "--log-level", "WARNING", "worker", "-A",
             "benchmarks.throughput_amqp:app"], env=env, cwd=ROOT,
        )
        try:
            app.send_task(noop.replace(uuid=f"warm-{token}")).get(timeout=60)
            first = rss_mb(worker.pid)
            for i in range(0, n, batch):
                app.send_tasks([noop.replace(uuid=f"m{j}-{token}") for j in range(i, min(n, i + batch))])
            if not channel.wait_for(2, 600):
                return f"not all {n:,} done in 600 s"
            app.result(f"m{n - 1}-{token}").get(timeout=60)
            time.sleep(0.5)
            after = rss_mb(worker.pid)
        finally:
            _stop(worker)
    finally:
        app.close()
        _delete_queues(queue, f"{queue}.dead", exchanges=(config.exchange, f"{config.exchange}.delay"))
    return f"worker RSS after {n:,} tasks with results in Redis: {after:.1f} MB ({first:.1f} MB after its first task)"


def _raw_chain(queue: str, body: bytes, props: BasicProperties, *, confirms: bool) -> float:
    """Median ms of CHAINS 10-hop chains where each delivery acks itself and publishes the next message
    (with ``confirms``, on a channel in confirm mode, as machinery publishes; nobody waits for them)."""
    chains: list[float] = []

    def chain(ch: Channel) -> None:
        hops = [0]
        started = [0.0]

        def start() -> None:
            hops[0] = 0
            started[0] = time.perf_counter()
            ch.basic_publish("", queue, body, props)

        def on_message(c: Channel, method: Basic.Deliver, _p: BasicProperties, _b: bytes) -> None:
            c.basic_ack(method.delivery_tag or 0)
            hops[0] += 1
            if hops[0] < 10:
                c.basic_publish("", queue, body, props)
                return
            chains.append(time.perf_counter() - started[0])
            if len(chains) < CHAINS:
                start()
            else:
                client.finish()

        def consume(_f: Any = None) -> None:
            ch.basic_qos(
                prefetch_count=100, callback=lambda _f: ch.basic_consume(queue, on_message, callback=lambda _g: start())
            )

        if confirms:
            ch.confirm_delivery(lambda _f: None, callback=consume)
        else:
            consume()

    client = _RawPika()
    client.run(chain)
    return statistics.median(chains) * 1000


# -- machinery ------------------------------------------------------------------------------------


def _machinery_setup(backend: str, prefetch: int, channel: SideChannel, expect: int) -> tuple[str, Any, dict[str, str]]:
    """A token, a machinery Config on an exchange and queue unique to it, and the environment of a
    worker process for it (reporting to ``channel`` at its first and ``expect``-th completion)."""
    from machinery import Config

    token = uuid.uuid4().hex[:8]
    exchange, queue = f"bench-ex-{token}", f"bench-q-{token}"
    config = Config(broker_url=AMQP_URL, result_backend=backend, exchange=exchange, default_queue=queue,
                    binding_key=queue, prefetch_count=prefetch)
    env = child_env(MACHINERY_BROKER_URL=AMQP_URL, MACHINERY_RESULT_BACKEND=backend, MACHINERY_EXCHANGE=exchange,
               MACHINERY_DEFAULT_QUEUE=queue, MACHINERY_BINDING_KEY=queue, MACHINERY_PREFETCH_COUNT=str(prefetch),
               **{FIFO_ENV: str(channel.path), EXPECT_ENV: str(expect)})
    return token, config, env


def machinery_rows(n: int, samples: int, channel: SideChannel, *, stored: bool, prefetch: int, batch: int,
                   follow_up: bool = False) -> Row:
    """machinery with one worker process (default 4 threads), results off or stored in Redis. With
    ``follow_up``, each of the n tasks sends one more (its ``on_success``), and the processing rate
    counts all 2n tasks; latency and chains are not measured then."""
    from machinery import App, Signature, chain

    row = Row(f"machinery, results {'stored (Redis)' if stored else 'not stored'}"
              + (", one follow-up per task" if follow_up else ""))
    total = 2 * n if follow_up else n
    # Expect the tasks and the warm-up task.
    token, config, env = _machinery_setup(REDIS_URL if stored else "none", prefetch, channel, total + 1)
    queue = config.default_queue
    app = App(config)
    noop = Signature("noop", [], immutable=True)
    try:
        app.broker.declare([queue])
        app.send_tasks([noop.replace(uuid=f"warm-{token}")])  # connect before timing
        if follow_up:
            signatures = [noop.replace(uuid=f"t{i}-{token}", on_success=[noop.replace(uuid=f"f{i}-{token}")])
                          for i in range(n)]
        else:
            signatures = [noop.replace(uuid=f"t{i}-{token}") for i in range(n)]
        started = time.perf_counter()
        for i in range(0, n, batch):
            app.send_tasks(signatures[i:i + batch])
        row.publish = n / (time.perf_counter() - started)
        queued = total + 1  # with the warm-up task
        channel.reset()
        worker = subprocess.Popen(
            [sys.executable, "-m", "machinery", "--log-level", "WARNING", "worker",
             "-A", "benchmarks.throughput_amqp:app"],
            env=env, cwd=ROOT,
        )
        try:
            if not channel.wait_for(2, 300):
                row.notes.append(f"not all {queued} done in 300 s")
                return row
            times = channel.times
            row.process = (queued - 1) / (times[1] - times[0])
            if follow_up:
                row.notes.append(f"{n:,} tasks + {n:,} follow-ups counted")
                return row
            latencies: list[float] = []
            for _ in range(samples):
                channel.reset()
                sent = time.perf_counter()
                result = app.send_task(noop.replace(uuid=f"l{uuid.uuid4().hex}"))
                if stored:
                    result.get(timeout=30)
                    latencies.append(time.perf_counter() - sent)
                else:
                    channel.wait_for(1, 30)
                    latencies.append(channel.times[0] - sent)
            row.p50_ms, row.p99_ms = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
            chains: list[float] = []
            for _ in range(CHAINS):
                channel.reset()
                # Built before the clock starts, as raw pika's body is.
                work = chain(*[noop.replace(uuid=f"c{uuid.uuid4().hex}") for _ in range(10)])
                sent = time.perf_counter()
                handle = app.send_task(work)
                if stored:
                    handle.get(timeout=30)
                    chains.append(time.perf_counter() - sent)
                else:
                    channel.wait_for(10, 30)
                    chains.append(channel.times[9] - sent)
            row.chain_ms = statistics.median(chains) * 1000
        finally:
            _stop(worker)
    finally:
        app.close()
        _delete_queues(queue, f"{queue}.dead", exchanges=(config.exchange, f"{config.exchange}.delay"))
    return row


# -- Celery and Dramatiq ------------------------------------------------------------------------


def _time_peer_worker(row: Row, command: list[str], env: dict[str, str], n: int, channel: SideChannel) -> None:
    """Run a peer's worker process until the side channel reports its ``n``-th completion (or 600 s
    passed), record its processing rate in ``row``, and stop it."""
    env = {**env, EXPECT_ENV: str(n)}
    worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if channel.wait_for(2, 600):
            row.process = (n - 1) / (channel.times[1] - channel.times[0])
        else:
            row.notes.append(f"not all {n} done in 600 s")
    finally:
        _stop(worker)


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
    row.publish = n / (time.perf_counter() - started)
    channel.reset()
    try:
        _time_peer_worker(
            row,
            [sys.executable, "-m", "celery", "-A", "benchmarks.throughput_amqp:celery_app", "worker", "-P",
             "threads", "-c", "4", "-Q", queue, "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            child_env(BENCH_QUEUE=queue, **{FIFO_ENV: str(channel.path)},
                      **({"BENCH_RESULTS": "1"} if stored else {})),
            n, channel,
        )
    finally:
        _delete_queues(queue)
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
    row.publish = n / (time.perf_counter() - started)
    broker.close()
    channel.reset()
    try:
        _time_peer_worker(
            row,
            [sys.executable, "-m", "dramatiq", "benchmarks.throughput_amqp", "--processes", "1", "--threads", "8"],
            child_env(BENCH_DRAMATIQ_QUEUE=queue, **{FIFO_ENV: str(channel.path)},
                      **({"BENCH_RESULTS": "1"} if stored else {})),
            n, channel,
        )
    finally:
        _delete_queues(queue, f"{queue}.DQ", f"{queue}.XQ")
    return row


# -- report ----------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.0f}{unit}" if value >= 100 else f"{value:.1f}{unit}"


def _ratio(value: float | None, ref: float | None, *, lower_is_better: bool = False) -> str:
    if value is None or not ref:
        return ""
    return f" ({value / ref:.2f}x)"


def report(rows: list[Row], n: int) -> str:
    ref = rows[0]
    lines = [f"{'system':<56} {'publish/s':>18} {'process/s':>18} {'p50 ms':>8} {'p99 ms':>8} {'chain10 ms':>16}"
             f" {'÷ unconfirmed':>13}"]
    for row in rows:
        unconfirmed = _ratio(row.chain_ms, ref.chain_unconfirmed_ms).strip(" ()") if row is not ref else ""
        lines.append(
            f"{row.name:<56} {_fmt(row.publish) + _ratio(row.publish, ref.publish):>18} "
            f"{_fmt(row.process) + _ratio(row.process, ref.process):>18} {_fmt(row.p50_ms):>8} {_fmt(row.p99_ms):>8} "
            f"{_fmt(row.chain_ms) + _ratio(row.chain_ms, ref.chain_ms):>16} {unconfirmed:>13}"
            + (f"  [{'; '.join(row.notes)}]" if row.notes else "")
        )
    return "\n".join(lines)


def ratios(rows: list[Row]) -> str:
    """The issue's targets as same-run ratios (those whose rows were measured)."""
    by_name = {r.name: r for r in rows}

    def rate(name: str) -> float | None:
        row = by_name.get(name)
        return None if row is None else row.process

    off, on = rate("machinery, results not stored"), rate("machinery, results stored (Redis)")
    follow = rate("machinery, results not stored, one follow-up per task")
    lines = ["same-run ratios:"]
    if off and on:
        lines.append(f"  results stored / not stored: {on / off:.2f} (aim >= 0.6)")
    if off and follow:
        lines.append(f"  one follow-up per task / none: {follow / off:.2f} (aim >= 0.5; both count every task run)")
    raw, raw_follow = rate("raw pika"), rate("raw pika, one follow-up per task")
    if raw and raw_follow and follow:
        lines.append(f"  one follow-up per task, machinery / raw pika: {follow / raw_follow:.2f}"
                     f" (raw pika's own follow-up / none: {raw_follow / raw:.2f})")
    for peer in ("Celery (acks_late, threads x4), results in Redis", "Dramatiq (threads x8), Results in Redis"):
        theirs = rate(peer)
        if on and theirs:
            lines.append(f"  machinery stored / {peer.split(' ')[0]} stored: {on / theirs:.2f} (aim >= 3)")
    ref = by_name.get("raw pika")
    mine = by_name.get("machinery, results not stored")
    if ref and mine and ref.chain_ms and mine.chain_ms:
        lines.append(f"  chain10 / raw pika's confirm-mode chain: {mine.chain_ms / ref.chain_ms:.2f} (aim <= 1.2)")
    return "\n".join(lines)


def chart(rows: list[Row], path: Path, title: str) -> Path | None:
    if importlib.util.find_spec("matplotlib") is None:
        return None
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    names = [r.name.replace(", ", "\n").replace(" (", "\n(") for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, attr, label in ((axes[0], "publish", "publish with confirms (msg/s)"),
                            (axes[1], "process", "processing (tasks/s)")):
        values = [getattr(r, attr) or 0 for r in rows]
        colors = ["#888888" if r.name.startswith("raw pika") else "#1f77b4" if r.name.startswith("machinery")
                  else "#ff7f0e" for r in rows]
        bars = ax.barh(names, values, color=colors)
        ax.set_title(label)
        ax.invert_yaxis()
        for bar, v in zip(bars, values, strict=True):
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {v:,.0f}", va="center", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks per throughput run (default 20,000)")
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="2,000 tasks and 50 latency samples")
    parser.add_argument("--prefetch", type=int, default=100,
                        help="machinery's prefetch_count, as raw pika's (default 100; config default is 32)")
    parser.add_argument("--batch", type=int, default=1000, help="tasks per send_tasks call (default 1,000)")
    parser.add_argument("--skip-peers", action="store_true", help="leave out Celery and Dramatiq")
    parser.add_argument("--skip-stored", action="store_true", help="leave out every row with results stored")
    parser.add_argument("--skip-follow-ups", action="store_true", help="leave out the one-follow-up-per-task rows")
    parser.add_argument("--memory-tasks", type=int, default=100_000,
                        help="tasks before the worker's resident memory is read (default 100,000; 0 skips it)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    n = 2000 if args.quick else args.tasks
    samples = 50 if args.quick else args.latency_samples
    print(f"machine: {machine()}; RabbitMQ {rabbitmq_version()}")
    print(f"load before: {load()}; N = {n:,} no-op tasks, one worker process (4 threads), prefetch "
          f"{args.prefetch}, send_tasks batches of {args.batch:,}; latency: {samples} samples")
    rows = [raw_pika(n)]
    memory = ""
    with tempfile.TemporaryDirectory() as tmp:
        channel = SideChannel(Path(tmp))
        for stored in (False,) if args.skip_stored else (False, True):
            rows.append(machinery_rows(n, samples, channel, stored=stored, prefetch=args.prefetch, batch=args.batch))
        if not args.skip_follow_ups:
            rows.append(raw_pika_follow_ups(n))
            rows.append(machinery_rows(n, samples, channel, stored=False, prefetch=args.prefetch, batch=args.batch,
                                       follow_up=True))
        if not args.skip_peers:
            for stored in (False,) if args.skip_stored else (False, True):
                for make in (celery_row, dramatiq_row):
                    try:
                        row = make(n, channel, stored=stored)
                    except Exception as exc:  # a peer that fails to run is reported, not fatal
                        print(f"{make.__name__}: {type(exc).__name__}: {exc}", file=sys.stderr)
                        continue
                    if row is not None:
                        rows.append(row)
        if args.memory_tasks:
            memory = machinery_memory(args.memory_tasks, channel, prefetch=args.prefetch, batch=args.batch)
    table = report(rows, n)
    print(table)
    print(ratios(rows))
    if memory:
        print(memory)
    print(f"load after: {load()}")
    print(f"ratios are to raw pika in this run; chain10 = send to the 10th step's completion (median of {CHAINS}), "
          "raw pika's publishing each step in confirm mode; '÷ unconfirmed' is to raw pika's chain without confirms")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = chart(rows, ROOT / "benchmarks" / "results" / f"throughput_amqp-{stamp}.png",
                 f"machinery on RabbitMQ vs raw pika, Celery, Dramatiq - N={n:,}, {machine()}, load {load()}")
    if path is not None:
        print(f"chart: {path}")


if __name__ == "__main__":
    main()
