"""``machinery demo``: a worker process on temporary SQLite files, the example tasks sent to it,
each result printed as it arrives, then the worker stopped cleanly. Needs no server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machinery.app import App
from machinery.config import Config
from machinery.errors import MachineryError, TaskFailed
from machinery.jsonvalues import JSON
from machinery.result import AsyncResult
from machinery.signature import Signature
from machinery.workflows import chain

__all__ = ["run_demo"]


def _show(value: JSON) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


class _WorkerGone(MachineryError):
    pass


def _wait(handle: AsyncResult, proc: subprocess.Popen[bytes], timeout: float) -> JSON:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return handle.get(timeout=min(0.5, max(deadline - time.monotonic(), 0.0)))
        except TaskFailed:
            raise
        except MachineryError:
            if proc.poll() is not None:
                raise _WorkerGone(f"the worker process exited with status {proc.returncode}") from None
            if time.monotonic() >= deadline:
                raise


def run_demo(*, timeout: float = 30.0, concurrency: int = 2) -> int:
    """Run the demo; the exit status (0 when every result arrived and the worker stopped cleanly)."""
    with tempfile.TemporaryDirectory(prefix="machinery-demo-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'demo.sqlite3'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MACHINERY_") or k == "MACHINERY_NO_EXTENSIONS"}
        env.update(MACHINERY_BROKER_URL=url, MACHINERY_RESULT_BACKEND=url)
        print(f"demo: broker and results in {url} (no server needed)")
        print(f"demo: starting a worker process: machinery worker -A machinery.demo:app -c {concurrency}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "machinery", "--log-level", "WARNING", "worker", "-A", "machinery.demo:app",
             "-c", str(concurrency)],
            env=env,
            # Not the caller's directory: `python -m` puts it first on sys.path, and run from a
            # source checkout that would import the checkout (not built) instead of the installed package.
            cwd=tmp,
        )
        status = 0
        try:
            with App(Config(broker_url=url, result_backend=url)) as app:
                status = _send_examples(app, proc, timeout)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    code = proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
                print(f"demo: worker stopped cleanly (exit status {code})" if code == 0
                      else f"demo: worker exited with status {code}")
                status = status or (code != 0)
        return int(status)


def _send_examples(app: App, proc: subprocess.Popen[bytes], timeout: float) -> int:
    add_1_1 = Signature("add", [1, 1])
    multiply = Signature("multiply", [3, 4])
    callback = Signature("multiply", [10])
    with_callback = Signature("add", [2, 3], on_success=[callback])
    on_error = Signature("on_error", [])
    failing = Signature("fail", [7], on_error=[on_error])
    example_chain = chain(Signature("add", [1, 1]), Signature("add", [5, 6]), Signature("multiply", [4]))

    handles: list[tuple[str, AsyncResult]] = [
        ("add(1, 1)", app.send_task(add_1_1)),
        ("multiply(3, 4)", app.send_task(multiply)),
        ("add(2, 3) with an on_success callback", app.result(app.send_task(with_callback).task_uuid)),
    ]
    callback_handle = app.result(callback.uuid)
    failing_handle = app.send_task(failing)
    error_handle = app.result(on_error.uuid)
    chain_handle = app.send_task(example_chain)
    try:
        for label, handle in handles:
            print(f"{label} = {_show(_wait(handle, proc, timeout))}", flush=True)
        print(f"  its callback multiply(5, 10) = {_show(_wait(callback_handle, proc, timeout))}", flush=True)
        try:
            _wait(failing_handle, proc, timeout)
            print("fail(7) unexpectedly succeeded")
            return 1
        except TaskFailed as exc:
            print(f"fail(7) failed: {exc.error}", flush=True)
        print(f"  its error callback returned: {_wait(error_handle, proc, timeout)!s}", flush=True)
        value = _wait(chain_handle, proc, timeout)
        print(f"chain add(1, 1) -> add(5, 6) -> multiply(4) = {_show(value)}   ((1 + 1) + (5 + 6)) * 4", flush=True)
    except MachineryError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    return 0
