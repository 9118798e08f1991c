"""What the fault tests share: an App of fault tasks on a fresh SQLite file, and worker processes."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from machinery import App, Config
from tests.faults.fault_app import make_app
from tests.runtime.brokers import sqlite_config
from tests.support.processes import REPO_ROOT, process_env, worker_command

__all__ = ["T", "fault_app_on", "start_worker", "stop_worker"]

#: Seconds any single wait may take before the test fails.
T = 30.0


def fault_app_on(tmp_path: Path, **settings: object) -> App:
    """The fault tasks on a SQLite file in ``tmp_path`` (``settings`` override the config)."""
    config = sqlite_config(tmp_path)
    if settings:
        config = config.replace(**settings)
    return make_app(config)


def start_worker(config: Config, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """``machinery worker -A tests.faults.fault_app:app args...`` in another process."""
    return subprocess.Popen(
        worker_command(*args, app_spec="tests.faults.fault_app:app", log_level="INFO"),
        cwd=REPO_ROOT, env=process_env(config, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = T) -> tuple[int | None, str]:
    """SIGTERM once; (exit status, output). Status None: it did not stop within ``timeout`` (then killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        code = None
    return code, out.decode(errors="replace")
