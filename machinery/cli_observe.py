"""The command line's looking commands: ``machinery events`` (tail the events), ``machinery
inspect`` (live workers, what each runs, queue depths) and ``machinery dashboard`` (a read-only
web page). They read the event channel of the configured broker; workers publish on it when
``events`` is on in their config or they run with ``--events``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

from machinery.app import App
from machinery.cli_args import port_number, positive_int, seconds
from machinery.config import Config, load_config, masked_url
from machinery.events import Event, Monitor, WorkerView, open_channel
from machinery.events.tail import describe, read_events

__all__ = ["add_commands"]

_SubParsers = Any  # argparse's _SubParsersAction, private in typeshed


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def cmd_events(args: argparse.Namespace) -> int:
    config = _config(args)
    wanted = set(args.types or [])
    channel = open_channel(config)
    seen = 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        sub = channel.subscribe(args.history)
        print(f"machinery events: following {masked_url(config.broker_url)}", file=sys.stderr, flush=True)
        try:
            while deadline is None or time.monotonic() < deadline:
                wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
                for event in read_events(sub, wait):
                    if wanted and event.type not in wanted:
                        continue
                    print(_event_json(event) if args.json else describe(event), flush=True)
                    seen += 1
                    if args.count is not None and seen >= args.count:
                        return 0
        finally:
            sub.close()
    except KeyboardInterrupt:
        return 0
    finally:
        channel.close()
    return 0 if args.count is None else 1


def _event_json(event: Event) -> str:
    from machinery.events import encode_event

    return encode_event(event).decode()


def _gather(config: Config, wait: float) -> Monitor:
    """A Monitor fed with what the channel kept of the last minute, plus ``wait`` seconds of new
    events (enough for every live worker's heartbeat)."""
    monitor = Monitor()
    channel = open_channel(config)
    try:
        sub = channel.subscribe(history=max(60.0, 3 * config.heartbeat_interval))
        try:
            deadline = time.monotonic() + wait
            while True:
                for event in read_events(sub, max(0.0, min(0.25, deadline - time.monotonic()))):
                    monitor.apply(event)
                if time.monotonic() >= deadline:
                    break
        finally:
            sub.close()
    finally:
        channel.close()
    return monitor


def _worker_json(view: WorkerView, now: float) -> dict[str, object]:
    return {
        "name": view.name,
        "queues": list(view.queues),
        "concurrency": view.concurrency,
        "processed": view.processed,
        "last_seen": view.last_seen,
        "running": [{"uuid": r.uuid, "name": r.name, "seconds": round(now - r.started, 3)} for r in view.running],
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    config = _config(args)
    wait = args.wait if args.wait is not None else config.heartbeat_interval + 0.5
    monitor = _gather(config, wait)
    now = time.time()
    workers = monitor.workers(now)
    queues = sorted({config.default_queue, *args.queues, *(q for w in workers for q in w.queues)})
    with App(config) as app:
        depths = [app.broker.depth(q) for q in queues]
    if args.json:
        print(json.dumps({
            "workers": [_worker_json(w, now) for w in workers],
            "queues": [{"queue": d.queue, "ready": d.ready, "delayed": d.delayed, "in_flight": d.in_flight,
                        "dead": d.dead} for d in depths],
        }, indent=2))
        return 0
    print(f"{len(workers)} live worker{'s' if len(workers) != 1 else ''}")
    for w in workers:
        print(f"  {w.name}  queues={','.join(w.queues)} threads={w.concurrency} processed={w.processed} "
              f"running={len(w.running)} (seen {now - w.last_seen:.1f}s ago)")
        for r in w.running:
            print(f"    {r.name}[{r.uuid}] for {now - r.started:.1f}s")
    print(f"{'queue':<32} {'ready':>8} {'delayed':>8} {'in flight':>10} {'dead':>8}")
    for d in depths:
        in_flight = "?" if d.in_flight < 0 else str(d.in_flight)
        print(f"{d.queue:<32} {d.ready:>8} {d.delayed:>8} {in_flight:>10} {d.dead:>8}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from machinery.dashboard import Dashboard

    config = _config(args)
    stop = threading.Event()
    with App(config) as app:
        dashboard = Dashboard(app, host=args.host, port=args.port, queues=args.queues)
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        try:
            dashboard.start()
            print(f"dashboard at {dashboard.url}", flush=True)
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            dashboard.stop()
    return 0


def add_commands(sub: _SubParsers) -> None:
    """Add ``events``, ``inspect`` and ``dashboard`` to the ``machinery`` parser's subcommands."""
    from machinery.events.model import EVENT_TYPES

    p = sub.add_parser("events", help="tail task and worker events",
                       description="Print task and worker events as they happen (workers need events on).")
    p.add_argument("--type", dest="types", action="append", choices=EVENT_TYPES, metavar="TYPE",
                   help="only events of this type (repeatable): " + ", ".join(EVENT_TYPES))
    p.add_argument("--history", type=seconds, default=0.0, metavar="S",
                   help="also the last S seconds of events, where the broker keeps them (SQLite)")
    p.add_argument("--count", type=positive_int, metavar="N", help="exit after N events (status 1 if fewer came)")
    p.add_argument("--timeout", type=seconds, metavar="S", help="exit after S seconds")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("inspect", help="live workers, what they run, queue depths",
                       description="List live workers (from their heartbeats), their running tasks, and queue depths.")
    p.add_argument("--wait", type=seconds, metavar="S",
                   help="seconds to listen for heartbeats (default: heartbeat_interval + 0.5)")
    p.add_argument("-Q", "--queue", dest="queues", action="append", default=[], metavar="QUEUE",
                   help="also show this queue (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("dashboard", help="serve a read-only web page of workers, queues and tasks",
                       description="Serve a live, read-only view of workers, queues, recent tasks and dead letters.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=port_number, default=8181, help="port (default 8181; 0 picks a free one)")
    p.add_argument("-Q", "--queue", dest="queues", action="append", default=[], metavar="QUEUE",
                   help="also show this queue (repeatable)")
    p.set_defaults(func=cmd_dashboard)
