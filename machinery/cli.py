"""The ``machinery`` command line: run a worker, send a task, read a result, show queue depths,
and a demo that needs no server."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from machinery.app import App
from machinery.cli_args import CommandError, port_number, positive_int, seconds
from machinery.cli_control import add_commands as add_control_commands
from machinery.cli_dead import add_commands as add_dead_commands
from machinery.cli_observe import add_commands
from machinery.config import Config, load_config
from machinery.errors import BrokerError, ConfigError, EncodeError, MachineryError, ResultTimeout, TaskFailed
from machinery.heartbeat import HEARTBEAT_ID, silence_hint
from machinery.jsonvalues import JSONInput, thaw
from machinery.locations import describe_url
from machinery.signature import Signature
from machinery.supervisor import SUPERVISED_ENV, watch_supervisor

if TYPE_CHECKING:
    from machinery.beat import Beat

__all__ = ["CommandError", "build_parser", "check_task_id", "load_app", "main", "parse_arg", "show_value"]

log = logging.getLogger("machinery.cli")

#: Set by a supervisor serving metrics for its worker processes: each writes its metrics to files.
METRICS_CHILD_ENV = "MACHINERY_METRICS_CHILD"


#: Text that can only have been meant as JSON: an object, an array, a quoted string or a number.
_LOOKS_LIKE_JSON = re.compile(r"\s*(?:[\[{\"]|-?\.?[0-9])")

#: A task id as ``send_task`` makes them (Go Machinery's ``task_<uuid>``), or a bare UUID.
_TASK_ID = re.compile(r"(?:task_)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def parse_arg(text: str, position: int = 1) -> JSONInput:
    """A command-line task argument: JSON when it parses (``1``, ``2.5``, ``[1,2]``, ``"x"``,
    ``null``), else the text itself as a string. Text that starts like JSON (``{``, ``[``, a
    quote or a digit) must be valid JSON: ``CommandError`` says where it is not."""
    try:
        value: JSONInput = json.loads(text)
    except json.JSONDecodeError as exc:
        if _LOOKS_LIKE_JSON.match(text):
            raise CommandError(
                f"argument {position} {text!r} is not valid JSON ({exc.msg}, column {exc.colno}); "
                f"write a string as '\"text\"'"
            ) from None
        return text
    except ValueError:
        return text
    return value


def check_task_id(text: str) -> str:
    """``text`` when it is a task id as ``send`` prints them (``task_<uuid>`` or a bare UUID)."""
    if not _TASK_ID.fullmatch(text):
        raise CommandError(f"{text!r} is not a task id (expected task_<uuid>, as printed by machinery send)")
    return text


def id_spellings(text: str) -> list[str]:
    """``text``, then the forms of a well-formed task id that a pasted copy may have lost: the
    ``task_`` prefix, lower case (a UUID's text form)."""
    forms = [text]
    if _TASK_ID.fullmatch(text):
        uuid = text[len("task_"):] if text[:5].lower() == "task_" else text
        for form in (f"task_{uuid.lower()}", uuid.lower()):
            if form not in forms:
                forms.append(form)
    return forms


def show_value(value: object) -> str:
    """``value`` as JSON for printing."""
    return json.dumps(thaw(value), ensure_ascii=False)


def load_app(spec: str) -> App:
    """The App named by ``module:attribute`` (the current directory is importable)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise CommandError(f"-A expects module:attribute (for example examples.app:app), got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise CommandError(
                f"cannot import {module_name!r}: no module named {exc.name!r} here ({os.getcwd()}) or on sys.path"
            ) from None
        raise CommandError(f"cannot import {module_name!r}: {exc}") from exc
    except Exception as exc:
        raise CommandError(f"cannot import {module_name!r}: {_describe(exc)}") from exc
    apps = sorted(name for name, value in vars(module).items() if isinstance(value, App))
    found = f"; Apps in {module_name}: {', '.join(apps)}" if apps else f"; {module_name} defines no App"
    if not hasattr(module, attribute):
        raise CommandError(f"module {module_name!r} has no attribute {attribute!r}{found}")
    app = getattr(module, attribute)
    if not isinstance(app, App):
        kind = "class" if isinstance(app, type) else type(app).__name__
        raise CommandError(f"{spec} is a {kind}, not a machinery App{found}")
    return app


def _describe(exc: BaseException) -> str:
    """``exc`` in one line, with where it was raised when that is a file of the user's."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, SyntaxError):
        return text.splitlines()[0]
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" ({os.path.relpath(last.filename)}, line {last.lineno})"
    return text


def _config(args: argparse.Namespace) -> Config:
    """``--config`` when given, else the configuration of the App named by ``-A`` (so a sender
    uses the broker and store its worker uses), else the defaults and ``MACHINERY_*``."""
    if args.config is None and getattr(args, "app", None):
        return load_app(args.app).config
    return load_config(args.config)


# -- commands -----------------------------------------------------------------------------------


def _require_metrics() -> None:
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise CommandError(f"metrics need prometheus_client ({exc}): pip install 'machinery[metrics]'") from None


def cmd_worker(args: argparse.Namespace) -> int:
    if args.processes > 1:
        from machinery.supervisor import Supervisor

        # A bad -A, broker or result store is reported here, not by P workers dying over and over.
        app = load_app(args.app)
        if args.config is not None:
            app.config = load_config(args.config)
        with app:
            app.broker.declare(args.queues or [app.config.default_queue])
            backend = app.backend
            if backend is not None:
                backend.get(HEARTBEAT_ID)

        child = ["--log-level", args.log_level, *(["--config", args.config] if args.config else [])]
        child += ["worker", "-A", args.app, *(["-c", str(args.concurrency)] if args.concurrency else [])]
        child += [arg for q in args.queues or [] for arg in ("-Q", q)]
        child += ["--events"] if args.events else []
        child += ["--beat"] if args.beat else []
        if args.metrics_port is None:
            return Supervisor(child, args.processes).run()
        with _supervised_metrics(app, args) as (env, on_exit):
            return Supervisor(child, args.processes, env=env, on_exit=on_exit).run()
    app = load_app(args.app)
    if args.config is not None:
        app.config = load_config(args.config)
    if args.events or app.config.events:
        app.enable_events()
    server = None
    if os.environ.get(METRICS_CHILD_ENV) == "1":
        _require_metrics()
        from machinery import metrics

        if not os.environ.get(metrics.MULTIPROC_ENV):
            raise CommandError(f"${METRICS_CHILD_ENV} needs ${metrics.MULTIPROC_ENV} (the supervisor sets both)")
        app.hooks.add(metrics.WorkerMetrics(None))
    elif args.metrics_port is not None:
        _require_metrics()
        from machinery.metrics import enable_metrics

        server = enable_metrics(app, args.metrics_port, args.metrics_host, args.queues)
    worker = app.worker(concurrency=args.concurrency, queues=args.queues or None)
    # Under a supervisor, a task thread given up at its hard time limit goes with its process, and
    # the process stops when the supervisor is killed without telling it.
    worker.exit_on_time_limit = os.environ.get(SUPERVISED_ENV) == "1"
    if worker.exit_on_time_limit:
        watch_supervisor()
    beat = _beat(app, args.lease).start() if args.beat else None
    try:
        worker.launch()
    finally:
        if beat is not None:
            beat[1].set()
            beat[0].join(timeout=10)
        if server is not None:
            server.close()
        app.close()
    return worker.exit_code


def _beat(app: App, lease: float) -> Beat:
    from machinery.beat import Beat

    entries = app.periodic_entries()
    if not entries:
        raise CommandError("nothing to schedule: no periodic entries in the config's periodic section or the App")
    return Beat(app, entries, lease=lease)


def cmd_beat(args: argparse.Namespace) -> int:
    app = load_app(args.app) if args.app else App(_config(args))
    if args.app and args.config is not None:
        app.config = load_config(args.config)
    beat = _beat(app, args.lease)
    stop = threading.Event()

    def stop_on(signum: int, frame: object) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop_on)
    try:
        beat.run(stop)
    finally:
        app.close()
    return 0


@contextmanager
def _supervised_metrics(
    app: App, args: argparse.Namespace
) -> Iterator[tuple[dict[str, str], Callable[[int], None]]]:
    """One metrics endpoint for every worker process: they write to a fresh directory, this
    process serves their sum (and the queue depths) and drops a dead process's live gauges."""
    _require_metrics()
    from machinery import metrics

    directory = tempfile.mkdtemp(prefix="machinery-metrics-")
    try:
        registry = metrics.multiprocess_registry(directory)
        registry.register(metrics.QueueDepthCollector(lambda: app.broker, args.queues or [app.config.default_queue]))
        server = metrics.serve_metrics(registry, args.metrics_port, args.metrics_host)
        try:
            env = {**os.environ, metrics.MULTIPROC_ENV: directory, METRICS_CHILD_ENV: "1"}
            yield env, lambda pid: metrics.forget_process(pid, directory)
        finally:
            server.close()
            app.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def cmd_send(args: argparse.Namespace) -> int:
    with App(_config(args)) as app:
        task_args = [parse_arg(a, i) for i, a in enumerate(args.args, 1)]
        try:
            sig = Signature(args.name, task_args, routing_key=args.queue or "")
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        try:
            result = app.send_task(sig)
        except EncodeError as exc:  # e.g. a value Go Machinery's typed arguments cannot carry
            raise CommandError(str(exc)) from None
        print(result.task_uuid, flush=True)
        if not args.wait:
            return 0
        try:
            value = result.get(timeout=args.timeout)
        except TaskFailed as exc:
            print(f"FAILURE: {exc.error}", file=sys.stderr)
            return 1
        except ResultTimeout as exc:
            print(f"machinery send: error: {exc} (sent to broker {describe_url(app.config.broker_url)})",
                  file=sys.stderr)
            return 1
        print(show_value(value))
    return 0


def cmd_result(args: argparse.Namespace) -> int:
    with App(_config(args)) as app:
        handle = app.result(args.uuid)
        if handle.info().state.value == "PENDING":  # nothing stored under it
            check_task_id(args.uuid)  # a malformed id: most likely a typo
            for form in id_spellings(args.uuid)[1:]:
                other = app.result(form)
                if other.info().state.value != "PENDING":
                    handle = other
                    break
        if args.wait:
            try:
                handle.get(timeout=args.timeout)
            except (TaskFailed, ResultTimeout):
                pass
        info = handle.info()
        if info.state.value == "FAILURE":
            print(f"{info.state} {info.error}")
            return 1
        line = str(info.state) if info.state.value != "SUCCESS" else f"{info.state} {show_value(info.result)}"
        print(line)
    return 0


def cmd_queues(args: argparse.Namespace) -> int:
    with App(_config(args)) as app:
        names = args.queues or [app.config.default_queue]
        depths = [app.broker.depth(name) for name in names]  # an unreachable broker fails before the header
        print(f"{'queue':<32} {'ready':>8} {'delayed':>8} {'in flight':>10} {'dead':>8}")
        unknown = False
        for name, d in zip(names, depths, strict=True):
            unknown = unknown or d.in_flight < 0
            in_flight = "?" if d.in_flight < 0 else str(d.in_flight)
            print(f"{name:<32} {d.ready:>8} {d.delayed:>8} {in_flight:>10} {d.dead:>8}")
        if unknown:
            print("in flight ?: RabbitMQ tells a client only its own unacknowledged messages; "
                  "`machinery inspect` shows what each worker runs (with events on)", file=sys.stderr)
        status = _list_tasks(app, names) if args.list else 0
        backend = app.backend
        if backend is not None:
            print(silence_hint(backend))  # whether a worker serves this result store, and where
    return status


def _list_tasks(app: App, queues: list[str]) -> int:
    """Print the tasks waiting in ``queues`` and the delayed ones; 1 (and one line on stderr) where
    the broker cannot list them (RabbitMQ)."""
    try:
        pending = {name: app.pending_tasks(name) for name in queues}
        delayed = app.delayed_tasks()
    except BrokerError as exc:
        print(f"machinery queues: error: cannot list tasks: {exc}", file=sys.stderr)
        return 1
    for name, sigs in pending.items():
        print(f"\npending in {name}:")
        for sig in sigs:
            print(f"  {sig.uuid}  {sig.name}{_show_args(sig)}")
    print("\ndelayed:")
    for sig in delayed:
        eta = sig.eta.isoformat() if sig.eta is not None else "(given back, no ETA)"
        print(f"  {sig.uuid}  {sig.name}{_show_args(sig)}  due {eta}")
    return 0


def _show_args(sig: Signature) -> str:
    text = ", ".join(repr(a) for a in sig.args)
    return f"({text if len(text) <= 60 else text[:57] + '...'})"


def cmd_demo(args: argparse.Namespace) -> int:
    from machinery.demo_run import run_demo

    return run_demo(timeout=args.timeout, concurrency=args.concurrency)


# -- parsing ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="machinery", description="A typed task queue: run workers, send tasks, read results."
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config file (default: $MACHINERY_CONFIG, else defaults)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="DEBUG also prints the traceback behind an error (default INFO)")
    parser.add_argument("--version", action="version", version=_version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("worker", help="run a worker until SIGINT/SIGTERM", description="Run a worker for an App.")
    p.add_argument("-A", "--app", required=True, metavar="MODULE:APP", help="the App to run, e.g. examples.app:app")
    p.add_argument("-c", "--concurrency", type=positive_int, metavar="N",
                   help="task threads (default: config.concurrency)")
    p.add_argument("-Q", "--queue", dest="queues", action="append", metavar="QUEUE",
                   help="queue to consume (repeatable; default: config.default_queue)")
    p.add_argument("-P", "--processes", type=positive_int, default=1, metavar="P",
                   help="worker processes under a supervisor that restarts dead ones (default 1)")
    p.add_argument("--metrics-port", type=port_number, metavar="PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (needs the metrics extra)")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                   help="address the metrics endpoint listens on (default 127.0.0.1; 0.0.0.0 for every one)")
    p.add_argument("--events", action="store_true",
                   help="publish task and worker events (as config.events does) for events/inspect/dashboard")
    p.add_argument("--beat", action="store_true", help="also run the periodic scheduler (see `machinery beat`)")
    p.add_argument("--lease", type=seconds, default=10.0, metavar="S",
                   help="with --beat: seconds before another scheduler takes over a run whose sender died (10)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("beat", help="run the periodic scheduler until SIGINT/SIGTERM",
                       description="Send periodic work at its due times, each run once however many run.")
    p.add_argument("-A", "--app", metavar="MODULE:APP", help="an App whose app.periodic(...) entries to add")
    p.add_argument("--lease", type=seconds, default=10.0, metavar="S",
                   help="seconds before another scheduler takes over a run whose sender died (default 10)")
    p.set_defaults(func=cmd_beat)

    p = sub.add_parser("send", help="send one task", description="Send one task; prints its UUID.")
    p.add_argument("-A", "--app", metavar="MODULE:APP",
                   help="use this App's configuration (the broker and results its worker uses)")
    p.add_argument("name", help="registered task name")
    p.add_argument("args", nargs="*", help="arguments, each parsed as JSON or else taken as a string")
    p.add_argument("--wait", action="store_true", help="wait for the result and print it")
    p.add_argument("--timeout", type=seconds, default=30.0, metavar="S", help="seconds to wait (default 30)")
    p.add_argument("--queue", metavar="Q", help="queue to send to (default: config.default_queue)")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("result", help="show a task's state and result", description="Show a task's state.")
    p.add_argument("-A", "--app", metavar="MODULE:APP",
                   help="use this App's configuration (the broker and results its worker uses)")
    p.add_argument("uuid", help="the task's UUID")
    p.add_argument("--wait", action="store_true", help="wait until it is final")
    p.add_argument("--timeout", type=seconds, default=30.0, metavar="S", help="seconds to wait (default 30)")
    p.set_defaults(func=cmd_result)

    p = sub.add_parser("queues", help="show queue depths", description="Ready, delayed, in-flight, dead messages.")
    p.add_argument("-A", "--app", metavar="MODULE:APP",
                   help="use this App's configuration (the broker and results its worker uses)")
    p.add_argument("queues", nargs="*", help="queues to show (default: config.default_queue)")
    p.add_argument("--list", action="store_true",
                   help="also list the pending tasks of these queues and all delayed tasks (SQLite, memory)")
    p.set_defaults(func=cmd_queues)

    add_commands(sub)
    add_dead_commands(sub)
    add_control_commands(sub)

    p = sub.add_parser(
        "demo", help="run the examples (add, multiply, callbacks, a chain) with no server",
        description="Start a worker process on temporary SQLite files, send the examples, print their results.",
    )
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait per result")
    p.add_argument("-c", "--concurrency", type=positive_int, default=2, metavar="N", help="worker threads (default 2)")
    p.set_defaults(func=cmd_demo)
    return parser


def _version_text() -> str:
    from machinery._speedups import USING_EXTENSIONS
    from machinery.version import __version__

    build = "compiled hot path" if USING_EXTENSIONS else "pure-Python hot path"
    return f"machinery {__version__} ({build}, Python {sys.version.split()[0]})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status. An error is one line on stderr (with its
    traceback under ``--log-level DEBUG``): status 2 for bad input, 1 for anything else."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    debug = args.log_level == "DEBUG"
    if debug:
        logging.getLogger("pika").setLevel(logging.DEBUG)
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        if isinstance(exc, CommandError | ConfigError):  # bad input: the command line or the configuration
            print(f"machinery {args.command}: error: {exc}", file=sys.stderr)
            return 2
        text = str(exc) if isinstance(exc, MachineryError) else _describe(exc)
        print(f"machinery {args.command}: error: {text}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
