"""Worker processes for the AMQP end-to-end tests: start one, stop it cleanly or kill it."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from machinery.config import Config
from tests.amqp.support import REPO_ROOT, worker_command
from tests.runtime.helpers import process_env

__all__ = ["WorkerProcess", "worker_process"]


class WorkerProcess:
    """One ``machinery worker`` process for ``config``; its output goes to ``log``."""

    def __init__(self, config: Config, log: Path, *args: str, app_spec: str = "tests.amqp.worker_app:app",
                 **env: str) -> None:
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

    def stop(self, timeout: float = 30.0) -> int:
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
def worker_process(config: Config, log: Path, *args: str, app_spec: str = "tests.amqp.worker_app:app",
                   **env: str) -> Iterator[WorkerProcess]:
    """A worker process for the ``with`` block, stopped cleanly at its end."""
    worker = WorkerProcess(config, log, *args, app_spec=app_spec, **env)
    try:
        yield worker
    finally:
        worker.stop()
