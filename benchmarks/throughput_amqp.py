"""Throughput and latency of machinery on RabbitMQ, with raw pika (the ceiling, ``amqp_raw``),
Celery (``acks_late``) and Dramatiq (``amqp_peers``) as references, all in one run against the same
RabbitMQ.

No-op tasks, N of them (``--tasks``, default 20,000), one worker process. For each system: publish
rate with publisher confirms (machinery: batched ``send_tasks``), then processing rate from a full
queue, timed by a side channel rather than queue depth (``side_channel``), p50/p99 send-to-result
latency and a 10-step chain's latency (its first nine steps do nothing, the tenth reports its
completion, as raw pika's chain only acks and publishes at each hop). machinery runs with results
not stored, then stored in Redis, then with one follow-up per task (each task's ``on_success``
sends one more; every task run counted), as raw pika does too. Celery and Dramatiq run without
results, then with their Redis result stores. Last, the worker's resident memory after
``--memory-tasks`` tasks with results in Redis.

A machine shared with nothing else still drifts by a fifth from minute to minute, so machinery's
and raw pika's rows are measured in ``--rounds`` rounds (default 3), one row after the other in
each, and every figure is the median over the rounds; the chains of machinery and of raw pika are
timed in alternating blocks while machinery's worker is up. Prints a table with ratios to raw
pika, the issue's targets as same-run ratios, the machine and its load, and writes a PNG chart to
``benchmarks/results/``.

Run: ``.venv/bin/python -m benchmarks.throughput_amqp [--tasks N] [--rounds R] [--quick] [--skip-peers]
[--skip-stored] [--skip-follow-ups] [--memory-tasks N]``
(also ``benchmarks/throughput.py --broker amqp``). Celery, Dramatiq and matplotlib come from the
``bench`` extra; a missing one is skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pika

from benchmarks.amqp_common import (
    AMQP_URL,
    REDIS_URL,
    Row,
    delete_declared,
    delete_results,
    rabbitmq_version,
    stop_process,
)
from benchmarks.amqp_peers import celery_row, dramatiq_row
from benchmarks.amqp_raw import raw_chains, raw_follow_up_round, raw_round
from benchmarks.machine import ROOT, child_env, describe, load
from benchmarks.side_channel import SideChannel, done

#: 10-step chains timed per system (the median is reported), spread over the rounds.
CHAINS = 100
#: Blocks of chains per round, alternating machinery's and raw pika's.
CHAIN_BLOCKS = 2

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    """``app``: the machinery app, made on first access inside worker processes."""
    if name == "app":
        from machinery import App, load_config

        machinery_app = App(load_config())

        @machinery_app.task(name="noop")
        def noop() -> int:
            done()
            return 1

        @machinery_app.task(name="hop")
        def hop() -> int:
            """A chain's inner step: it reports nothing, as raw pika's hops do not."""
            return 1

        globals()["app"] = machinery_app
        return machinery_app
    raise AttributeError(name)


def machine() -> str:
    from machinery import USING_EXTENSIONS

    return describe(f"pika {pika.__version__}", f"codec {'compiled' if USING_EXTENSIONS else 'pure Python'}")


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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
                    **channel.env(expect))
    return token, config, env


def _start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "machinery", "--log-level", "WARNING", "worker", "-A", "benchmarks.throughput_amqp:app"],
        env=env, cwd=ROOT,
    )


@dataclass
class Round:
    """What one round of a machinery row measures besides its rates."""

    n: int
    samples: int = 0
    """Latency samples."""
    chains: int = 0
    """Chains per block (CHAIN_BLOCKS blocks)."""
    reference: Row | None = None
    """raw pika's row: its chains are timed in the blocks between machinery's."""


def _chain10(token: str) -> Any:
    """The timed chain: nine ``hop`` steps, which report nothing (as raw pika's hops do nothing but
    ack and publish), then a ``noop``, whose completion the side channel times."""
    from machinery import Signature, chain

    steps = [Signature("hop" if i < 9 else "noop", [], uuid=f"c{uuid.uuid4().hex[:12]}-{token}", immutable=True)
             for i in range(10)]
    return chain(*steps)


def _hop_bodies(head: Any) -> list[bytes]:
    """The message machinery publishes at each hop of the chain whose first step is ``head``: the
    step with the steps after it nested in its ``on_success`` (raw pika's chain sends the same bytes)."""
    from machinery import encode

    bodies: list[bytes] = []
    step = head
    while step is not None:
        bodies.append(encode(step))
        step = step.on_success[0] if step.on_success else None
    return bodies


def machinery_round(row: Row, channel: SideChannel, this: Round, *, stored: bool, prefetch: int, batch: int,
                    follow_up: bool = False) -> None:
    """One round of machinery with one worker process (default 4 threads), results off or stored in
    Redis: publish and processing rates, then latency samples and chains. With ``follow_up``, each
    of the n tasks sends one more (its ``on_success``), and the processing rate counts all 2n tasks."""
    from machinery import App, Signature

    n = this.n
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
        row.publishes.append(n / (time.perf_counter() - started))
        channel.reset()
        worker = _start_worker(env)
        try:
            if not channel.wait_for(2, 300):
                row.notes.append(f"not all {total + 1} done in 300 s")
                return
            times = channel.times
            row.processes.append(total / (times[1] - times[0]))  # the first completion is the warm-up's
            for i in range(this.samples):
                channel.reset()
                sent = time.perf_counter()
                result = app.send_task(noop.replace(uuid=f"l{i}-{token}"))
                if stored:
                    result.get(timeout=30)
                    row.latencies.append(time.perf_counter() - sent)
                elif channel.wait_for(1, 30):
                    row.latencies.append(channel.times[0] - sent)
            for _ in range(CHAIN_BLOCKS if this.chains else 0):
                for _ in range(this.chains):
                    channel.reset()
                    # Built before the clock starts, as raw pika's body is.
                    work = _chain10(token)
                    sent = time.perf_counter()
                    handle = app.send_task(work)
                    if stored:
                        handle.get(timeout=30)
                        row.chains.append(time.perf_counter() - sent)
                    elif channel.wait_for(1, 30):  # only the last step reports
                        row.chains.append(channel.times[0] - sent)
                if this.reference is not None:
                    bodies = _hop_bodies(_chain10(token).head)
                    this.reference.chains += raw_chains(this.chains, confirms=True, bodies=bodies)
                    this.reference.chains_unconfirmed += raw_chains(this.chains, confirms=False, bodies=bodies)
        finally:
            stop_process(worker)
    finally:
        app.close()
        delete_declared(queue, f"{queue}.dead", exchanges=(config.exchange, f"{config.exchange}.delay"))
        if stored:
            delete_results(token)


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
        worker = _start_worker(env)
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
            stop_process(worker)
    finally:
        app.close()
        delete_declared(queue, f"{queue}.dead", exchanges=(config.exchange, f"{config.exchange}.delay"))
        delete_results(token)
    return f"worker RSS after {n:,} tasks with results in Redis: {after:.1f} MB ({first:.1f} MB after its first task)"


# -- report ----------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.0f}{unit}" if value >= 100 else f"{value:.1f}{unit}"


def _ratio(value: float | None, ref: float | None, *, lower_is_better: bool = False) -> str:
    if value is None or not ref:
        return ""
    return f" ({value / ref:.2f}x)"


def _notes(row: Row) -> list[str]:
    notes = list(row.notes)
    if row.chain_unconfirmed_ms is not None:
        notes.append(f"chain10 without publisher confirms: {row.chain_unconfirmed_ms:.1f} ms")
    spread = row.spread()
    return [*notes, spread] if spread else notes


def report(rows: list[Row]) -> str:
    ref = rows[0]
    lines = [f"{'system':<56} {'publish/s':>18} {'process/s':>18} {'p50 ms':>8} {'p99 ms':>8} {'chain10 ms':>16}"
             f" {'÷ unconfirmed':>13}"]
    for row in rows:
        unconfirmed = _ratio(row.chain_ms, ref.chain_unconfirmed_ms).strip(" ()") if row is not ref else ""
        lines.append(
            f"{row.name:<56} {_fmt(row.publish) + _ratio(row.publish, ref.publish):>18} "
            f"{_fmt(row.process) + _ratio(row.process, ref.process):>18} {_fmt(row.p50_ms):>8} {_fmt(row.p99_ms):>8} "
            f"{_fmt(row.chain_ms) + _ratio(row.chain_ms, ref.chain_ms):>16} {unconfirmed:>13}"
            + (f"  [{'; '.join(notes)}]" if (notes := _notes(row)) else "")
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
    fig, axes = plt.subplots(1, 2, figsize=(12, 1.5 + 0.62 * len(rows)))
    for ax, attr, label in ((axes[0], "publish", "publish with confirms (msg/s)"),
                            (axes[1], "process", "processing (tasks/s)")):
        measured: list[float | None] = [getattr(r, attr) for r in rows]
        colors = ["#888888" if r.name.startswith("raw pika") else "#1f77b4" if r.name.startswith("machinery")
                  else "#ff7f0e" for r in rows]
        bars = ax.barh(names, [v or 0 for v in measured], color=colors)
        ax.set_title(label)
        ax.invert_yaxis()
        for bar, v in zip(bars, measured, strict=True):
            text = " not measured" if v is None else f" {v:,.0f}"
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=8)
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
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of machinery's and raw pika's rows, medians reported (default 3)")
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="2,000 tasks, 50 latency samples, one round")
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
    rounds = 1 if args.quick else max(1, args.rounds)
    print(f"machine: {machine()}; RabbitMQ {rabbitmq_version()}")
    plural = "s" if rounds != 1 else ""
    print(f"load before: {load()}; N = {n:,} no-op tasks, one worker process (4 threads), prefetch "
          f"{args.prefetch}, send_tasks batches of {args.batch:,}; latency: {samples} samples; {rounds} round{plural}")
    raw = Row("raw pika")
    off = Row("machinery, results not stored")
    on = Row("machinery, results stored (Redis)")
    raw_follow = Row("raw pika, one follow-up per task", notes=[f"{n:,} tasks + {n:,} follow-ups counted"])
    follow = Row("machinery, results not stored, one follow-up per task",
                 notes=[f"{n:,} tasks + {n:,} follow-ups counted"])
    per_round = Round(n, samples=math.ceil(samples / rounds), chains=math.ceil(CHAINS / (rounds * CHAIN_BLOCKS)))
    settings = {"prefetch": args.prefetch, "batch": args.batch}
    memory = ""
    peers: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        channel = SideChannel(Path(tmp))
        for _ in range(rounds):
            raw_round(raw, n)
            machinery_round(off, channel, replace(per_round, reference=raw), stored=False, **settings)
            if not args.skip_stored:
                machinery_round(on, channel, per_round, stored=True, **settings)
            if not args.skip_follow_ups:
                raw_follow_up_round(raw_follow, n)
                machinery_round(follow, channel, Round(n), stored=False, follow_up=True, **settings)
        if not args.skip_peers:
            for stored in (False,) if args.skip_stored else (False, True):
                for make in (celery_row, dramatiq_row):
                    try:
                        row = make(n, channel, stored=stored)
                    except Exception as exc:  # a peer that fails to run is reported, not fatal
                        print(f"{make.__name__}: {type(exc).__name__}: {exc}", file=sys.stderr)
                        continue
                    if row is not None:
                        peers.append(row)
        if args.memory_tasks:
            memory = machinery_memory(args.memory_tasks, channel, **settings)
    rows = [raw, off]
    rows += [] if args.skip_stored else [on]
    rows += [] if args.skip_follow_ups else [raw_follow, follow]
    rows += peers
    print(report(rows))
    print(ratios(rows))
    if memory:
        print(memory)
    print(f"load after: {load()}")
    print(f"ratios are to raw pika in this run; machinery's and raw pika's figures are medians of {rounds} "
          f"rounds (their rates listed as 'rounds'); chain10 = send to the 10th step's completion (median of "
          f"{CHAIN_BLOCKS * rounds * per_round.chains}, in blocks alternating with raw pika's), raw pika's "
          "publishing each step in confirm mode; '÷ unconfirmed' is to raw pika's chain without confirms")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = chart(rows, ROOT / "benchmarks" / "results" / f"throughput_amqp-{stamp}.png",
                 f"machinery on RabbitMQ vs raw pika, Celery, Dramatiq - N={n:,}, {rounds} rounds, {machine()}, "
                 f"load {load()}")
    if path is not None:
        print(f"chart: {path}")


if __name__ == "__main__":
    main()
