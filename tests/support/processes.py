"""``machinery worker`` processes for tests: the command, the environment, and a handle that stops
the process cleanly or kills it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from machinery import Config
from tests.support.waiting import TIMEOUT

__all__ = ["REPO_ROOT", "WORKER_APP", "WorkerProcess", "process_env", "worker_command", "worker_process"]

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The App worker processes run unless told otherwise (``tests/support/worker_app.py``).
WORKER_APP = "tests.support.worker_app:app"


def worker_command(*args: str, app_spec: str = WORKER_APP, log_level: str = "WARNING") -> list[str]:
    """``python -m machinery --log-level log_level worker -A app_spec args...`` with this interpreter."""
    return [sys.executable, "-m", "machinery", "--log-level", log_level, "worker", "-A", app_spec, *args]


def process_env(config: Config, **extra: str) -> dict[str, str]:
    """The environment for a ``machinery`` process using ``config``'s broker, backend and queue."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACHINERY_") or k == "MACHINERY_NO_EXTENSIONS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env.update(
        MACHINERY_BROKER_URL=config.broker_url,
        MACHINERY_RESULT_BACKEND=config.result_backend,
        MACHINERY_EXCHANGE=config.exchange,
        MACHINERY_DEFAULT_QUEUE=config.default_queue,
        MACHINERY_BINDING_KEY=config.binding_key,
        MACHINERY_PREFETCH_COUNT=str(config.prefetch_count),
        MACHINERY_VISIBILITY_TIMEOUT=str(config.visibility_timeout),
    )
    env.update(extra)
    return env


class WorkerProcess:
    """One ``machinery worker`` process for ``config``; its output goes to ``log``."""

    def __init__(self, config: Config, log: Path, *args: str, app_spec: str = WORKER_APP, **env: str) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                worker_command(*args, app_spec=app_spec),
                env=process_env(config, **env),
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as a crash."""
        self.process.kill()
        self.process.wait(10)

    def stop(self, timeout: float = TIMEOUT) -> int:
        """SIGTERM, then wait for the clean stop; SIGKILL if it does not come. The exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def worker_process(config: Config, log: Path, *args: str, app_spec: str = WORKER_APP,
                   **env: str) -> Iterator[WorkerProcess]:
    """A worker process for the ``with`` block, stopped cleanly at its end."""
    worker = WorkerProcess(config, log, *args, app_spec=app_spec, **env)
    try:
        yield worker
    finally:
        worker.stop()
