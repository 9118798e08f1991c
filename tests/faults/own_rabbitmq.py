"""A RabbitMQ node of a test's own, on loopback, with its own node name, ports and data directory,
for settings the shared server must not be given (here: a short ``consumer_timeout``)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["own_rabbitmq"]

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the real script: the /usr/sbin wrapper switches user


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def own_rabbitmq(tmp: Path, *, conf: str = "", advanced: str = "[].", boot_timeout: float = 90.0) -> Iterator[str]:
    """Start a RabbitMQ node in ``tmp`` with ``conf`` added to its rabbitmq.conf; yield its AMQP
    URL; stop it (by its process group) afterwards. Skips where RabbitMQ is not installed."""
    server = SERVER if os.path.exists(SERVER) else shutil.which("rabbitmq-server")
    if server is None:
        if os.environ.get("MACHINERY_REQUIRE_RABBITMQ"):
            pytest.fail("rabbitmq-server is not installed, and MACHINERY_REQUIRE_RABBITMQ requires it")
        pytest.skip("rabbitmq-server is not installed")
    port, dist = _free_port(), _free_port()
    home = tmp / "rabbitmq"
    home.mkdir()
    (home / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n{conf}\n")
    (home / "advanced.config").write_text(advanced + "\n")
    (home / "enabled_plugins").write_text("[].\n")
    env = {
        **os.environ,
        "HOME": str(home),
        "RABBITMQ_NODENAME": f"machinery-test-{uuid.uuid4().hex[:8]}@localhost",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
    }
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen([server], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + boot_timeout
        while not _open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"own RabbitMQ did not start: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.25)
        yield f"amqp://guest:guest@127.0.0.1:{port}/"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        log.close()
