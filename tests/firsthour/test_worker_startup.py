"""A worker that cannot open its broker or result store exits at once with one line and status 1;
a signal at any point of its start-up stops it (no hang, no ignored SIGTERM)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from machinery import Config
from tests.firsthour.support import (
    APP,
    REPO_ROOT,
    T,
    free_port,
    process_env,
    run_machinery,
    silent_server,
    sqlite_config,
    worker_argv,
)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_an_unknown_broker_scheme_is_one_line_and_status_2(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path).replace(broker_url="foo://somewhere")
    done = run_machinery(config, "worker", "-A", APP)
    assert done.returncode == 2  # bad input: the configuration
    assert one_error_line(done) == (
        "machinery worker: error: config broker_url: expected a memory://, sqlite://, amqp:// or amqps:// URL, "
        "got 'foo://somewhere'"
    )


def test_a_sqlite_broker_in_a_missing_directory_names_the_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    config = sqlite_config(tmp_path).replace(broker_url=f"sqlite:///{missing}/broker.db")
    done = run_machinery(config, "worker", "-A", APP)
    assert done.returncode == 1
    assert one_error_line(done) == (
        f"machinery worker: error: SQLite broker: cannot open {missing}/broker.db: "
        f"the directory {missing} does not exist"
    )


def test_a_result_store_that_cannot_be_opened_stops_the_worker_too(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    config = sqlite_config(tmp_path).replace(result_backend=f"sqlite:///{missing}/results.db")
    done = run_machinery(config, "worker", "-A", APP)
    assert done.returncode == 1
    assert one_error_line(done) == (
        f"machinery worker: error: SQLite result backend: cannot open {missing}/results.db: "
        f"the directory {missing} does not exist"
    )


@pytest.mark.parametrize(
    "args", [["worker", "-A", APP], ["worker", "-A", APP, "-P", "2"], ["send", "add", "1", "2"]],
    ids=["worker", "worker-processes", "send"],
)
def test_rabbitmq_port_with_nothing_listening_fails_at_once_naming_the_cause(tmp_path: Path, args: list[str]) -> None:
    port = free_port()
    config = sqlite_config(tmp_path).replace(broker_url=f"amqp://guest:secret99@127.0.0.1:{port}/")
    started = time.monotonic()
    done = run_machinery(config, *args)
    assert time.monotonic() - started < 10
    assert done.returncode == 1
    assert one_error_line(done) == (  # one line: no pika log lines, no restart loop of worker processes
        f"machinery {args[0]}: error: cannot open the AMQP broker amqp://guest:***@127.0.0.1:{port}/: "
        f"connection refused to 127.0.0.1:{port} (is RabbitMQ running there?)"
    )


def test_debug_log_level_shows_the_traceback(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path).replace(broker_url="foo://somewhere")
    done = run_machinery(config, "--log-level", "DEBUG", "worker", "-A", APP)
    assert done.returncode == 2
    assert "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("machinery worker: error: config broker_url")


def test_an_amqp_url_without_pika_installed_says_what_to_install(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path).replace(broker_url="amqp://guest:guest@127.0.0.1:5672/")
    code = "import sys; sys.modules['pika'] = None; from machinery.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, "worker", "-A", APP], cwd=REPO_ROOT, env=process_env(config),
        capture_output=True, text=True, timeout=T, check=False,
    )
    assert done.returncode == 1
    assert one_error_line(done) == (
        "machinery worker: error: amqp://guest:***@127.0.0.1:5672/ needs pika, which is not installed "
        "(pip install 'machinery[amqp]')"
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_broker_is_opening_stops_the_worker(tmp_path: Path, signum: signal.Signals) -> None:
    with silent_server() as port:
        config = sqlite_config(tmp_path).replace(broker_url=f"amqp://guest:guest@127.0.0.1:{port}/")
        worker = subprocess.Popen(worker_argv(), cwd=REPO_ROOT, env=process_env(config),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(2.0)  # imported, and stuck in the AMQP handshake the server never answers
            assert worker.poll() is None
            worker.send_signal(signum)
            _out, err = worker.communicate(timeout=10)
        finally:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    assert f"signal {signum.name} during start-up: stopping before consuming" in err
    assert "Traceback" not in err


def test_sigterm_before_the_app_is_imported_ends_the_process(tmp_path: Path) -> None:
    config: Config = sqlite_config(tmp_path)
    worker = subprocess.Popen(worker_argv(), cwd=REPO_ROOT, env=process_env(config),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=T) in (-signal.SIGTERM, 0)


def test_a_redis_result_store_with_nothing_listening_stops_the_worker_at_once(tmp_path: Path) -> None:
    port = free_port()
    config = sqlite_config(tmp_path).replace(result_backend=f"redis://127.0.0.1:{port}/0")
    done = run_machinery(config, "worker", "-A", APP)
    assert done.returncode == 1
    assert one_error_line(done) == (
        f"machinery worker: error: Redis result backend at redis://127.0.0.1:{port}/0: ConnectionError: "
        f"Error 111 connecting to 127.0.0.1:{port}. Connection refused."
    )


def test_queues_of_an_unreachable_broker_print_the_error_without_a_header(tmp_path: Path) -> None:
    port = free_port()
    config = sqlite_config(tmp_path).replace(broker_url=f"amqp://guest:guest@127.0.0.1:{port}/")
    done = run_machinery(config, "queues")
    assert (done.returncode, done.stdout) == (1, "")
    assert one_error_line(done).startswith("machinery queues: error: cannot open the AMQP broker")


def test_an_embedded_worker_start_raises_the_open_error(tmp_path: Path) -> None:
    from machinery import App, BrokerError

    config = sqlite_config(tmp_path).replace(broker_url=f"sqlite:///{tmp_path}/missing/broker.db")
    with App(config) as app:
        worker = app.worker(concurrency=1)
        with pytest.raises(BrokerError, match=r"the directory .*/missing does not exist"):
            worker.start()
        worker.stop(wait=True, timeout=5)  # nothing to stop; must not hang or open anything


@pytest.mark.parametrize("script", ["worker.py", "send.py"])
def test_the_example_scripts_report_an_unreachable_broker_in_one_line(tmp_path: Path, script: str) -> None:
    port = free_port()
    config = sqlite_config(tmp_path).replace(broker_url=f"amqp://guest:guest@127.0.0.1:{port}/")
    done = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / script)], cwd=tmp_path,
                          env=process_env(config), capture_output=True, text=True, timeout=T, check=False)
    assert done.returncode == 1
    assert one_error_line(done) == (
        f"{script}: cannot open the AMQP broker amqp://guest:***@127.0.0.1:{port}/: "
        f"connection refused to 127.0.0.1:{port} (is RabbitMQ running there?)"
    )


@pytest.mark.rabbitmq
@pytest.mark.parametrize(
    ("path", "cause"),
    [
        ("guest:wrong-password@127.0.0.1:5672/", "login refused by 127.0.0.1:5672 (check the user name and password)"),
        ("guest:guest@127.0.0.1:5672/no-such-vhost", "access refused by 127.0.0.1:5672 (check the virtual host and "
         "its permissions): NOT_ALLOWED - vhost no-such-vhost not found"),
    ],
    ids=["password", "vhost"],
)
def test_rabbitmq_refusing_the_login_is_named(tmp_path: Path, rabbitmq_url: str, path: str, cause: str) -> None:
    url = f"amqp://{path}"
    config = sqlite_config(tmp_path).replace(broker_url=url)
    done = run_machinery(config, "worker", "-A", APP)
    assert done.returncode == 1
    masked = url.replace("wrong-password", "***").replace("guest:guest", "guest:***")
    assert one_error_line(done) == f"machinery worker: error: cannot open the AMQP broker {masked}: {cause}"
