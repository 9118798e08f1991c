"""Servers of a test's own, on loopback, under its temporary directory: a Redis with TLS and RabbitMQ
nodes (alone, with a TLS listener, or clustered). Each has its own ports, node name and data
directory and is stopped by its PID (never the shared RabbitMQ on 5672 or Redis on 6379)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults.certificates import PKI

__all__ = ["OwnRedis", "RabbitNode", "free_port", "need_program"]

#: Ports the RabbitMQ CLI tools take for themselves, and the shared node's distribution port.
_RESERVED = set(range(35672, 35683)) | {4369, 5672, 6379, 15672, 25672}
_RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
_taken: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nothing listens on now (and not one RabbitMQ's tools use)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _RESERVED and port not in _taken and port + 1 not in _RESERVED:
            _taken.add(port)
            return port


def need_program(path: str) -> str:
    """The full path of program ``path``; skips the test (fails under CI) when it is not installed."""
    found = shutil.which(path) or (path if os.access(path, os.X_OK) else None)
    if found is None:
        if os.environ.get("MACHINERY_REQUIRE_RABBITMQ"):
            pytest.fail(f"{path} is not installed, and MACHINERY_REQUIRE_RABBITMQ requires it")
        pytest.skip(f"{path} is not installed")
    return found


def _wait_port(port: int, timeout: float, alive: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive.poll() is not None:
            raise RuntimeError(f"server exited with {alive.returncode}: {log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s: {log.read_text(errors='replace')[-3000:]}")


class OwnRedis:
    """``redis-server`` with only a TLS port, certificates from ``pki``; ``client_certs`` makes
    it refuse clients without a certificate signed by the CA."""

    def __init__(self, directory: Path, pki: PKI, *, client_certs: bool) -> None:
        need_program("redis-server")
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = directory / "redis.log"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(self.port),
                 "--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key),
                 "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "yes" if client_certs else "no",
                 "--save", "", "--appendonly", "no", "--dir", str(directory)],
                stdout=out, stderr=subprocess.STDOUT,
            )
        try:
            _wait_port(self.port, 20.0, self.process, self.log)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class RabbitNode:
    """One RabbitMQ node named ``<name>@localhost`` with its files in ``directory``: plain AMQP on
    ``port``, or only TLS there when ``tls`` is given; ``conf`` is added to its rabbitmq.conf and
    ``advanced`` is its advanced.config. Nodes sharing ``home`` share the Erlang cookie (and can
    form a cluster)."""

    def __init__(self, directory: Path, name: str, *, home: Path, tls: PKI | None = None,
                 client_certs: bool = False, conf: str = "", advanced: str = "[].") -> None:
        need_program(str(_RABBIT_BIN / "rabbitmq-server"))
        self.directory = directory
        # The process id in the node name: two test runs on one machine must not clash in epmd.
        self.name = f"{name}-{os.getpid()}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)
        lines = ["loopback_users = none", "log.console = false", "log.file.level = warning"]
        if tls is None:
            lines.append(f"listeners.tcp.default = 127.0.0.1:{self.port}")
        else:
            lines += [
                "listeners.tcp = none",
                f"listeners.ssl.default = 127.0.0.1:{self.port}",
                f"ssl_options.cacertfile = {tls.ca}",
                f"ssl_options.certfile = {tls.server_cert}",
                f"ssl_options.keyfile = {tls.server_key}",
                "ssl_options.verify = verify_peer" if client_certs else "ssl_options.verify = verify_none",
                f"ssl_options.fail_if_no_peer_cert = {'true' if client_certs else 'false'}",
            ]
        if conf:
            lines.append(conf)
        (directory / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
        (directory / "advanced.config").write_text(advanced + "\n")
        (directory / "enabled_plugins").write_text("[].\n")
        (directory / "rabbitmq-env.conf").write_text("")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(directory / "node.pid"),
            "ERL_CRASH_DUMP": str(directory / "erl_crash.dump"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(directory / "plugins-expand"),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "server.log"

    def start(self, timeout: float = 90.0) -> RabbitNode:
        """Start the node and wait until it accepts AMQP connections."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([str(_RABBIT_BIN / "rabbitmq-server")], env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True, cwd=self.directory)
        try:
            _wait_port(self.port, timeout, self.process, self.log)
        except BaseException:
            self.kill()
            raise
        return self

    def url(self, scheme: str = "amqp") -> str:
        return f"{scheme}://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout: float = 120.0) -> str:
        """``rabbitmqctl -n <node> args...`` (raises with its output when it fails)."""
        done = subprocess.run([str(_RABBIT_BIN / "rabbitmqctl"), "-n", self.name, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.name}: {done.stdout}{done.stderr}")
        return done.stdout

    def beam_pid(self) -> int | None:
        """The PID of the node's Erlang VM (from its PID file), None before it wrote one."""
        try:
            return int((self.directory / "node.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL the node's processes: a crash, nothing flushed or said goodbye."""
        pid = self.beam_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)

    def stop(self) -> None:
        """Stop the node cleanly (``rabbitmqctl stop``), killing it if that does not work in time."""
        if self.process is None or self.process.poll() is not None:
            self.kill()
            return
        try:
            self.ctl("stop", timeout=60)
            self.process.wait(30)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        self.kill()
