"""What the first-hour tests share: the ``machinery`` command in a fresh process, a worker command
that logs at INFO, a free port, and a TCP server that accepts connections and never answers (a
broker stuck in its handshake). The shared test scaffolding is imported here only."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from machinery import Config
from tests.runtime.brokers import sqlite_config
from tests.support.processes import REPO_ROOT, WORKER_APP, process_env

__all__ = ["APP", "REPO_ROOT", "T", "free_port", "process_env", "run_machinery", "silent_server", "sqlite_config",
           "worker_argv"]

#: The App the worker processes of these tests run (configured from ``MACHINERY_*``).
APP = WORKER_APP

#: Seconds any one command may take before the test fails (a hang must not hang the suite).
T = 30.0


def run_machinery(
    config: Config, *args: str, cwd: Path = REPO_ROOT, timeout: float = T, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m machinery args...`` with ``config``'s settings in its environment."""
    return subprocess.run(
        [sys.executable, "-m", "machinery", *args], cwd=cwd, env=process_env(config, **env),
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def worker_argv(*args: str, app_spec: str = APP) -> list[str]:
    """``python -m machinery --log-level INFO worker -A app_spec args...`` (the tests read its log)."""
    return [sys.executable, "-m", "machinery", "--log-level", "INFO", "worker", "-A", app_spec, *args]


def free_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never sends a byte, for the ``with``."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
