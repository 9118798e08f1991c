"""A sender and a worker that use different database files can find out: relative SQLite paths in
a config file are relative to that file, the worker logs the absolute paths it serves, and a
``ResultTimeout`` says whether any worker's heartbeat reached the result store (and its broker)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from machinery import App, Config, ResultTimeout, Signature, load_config
from machinery.backends.memory import MemoryBackend
from machinery.heartbeat import HEARTBEAT_INTERVAL, Heartbeat, last_beat, silence_hint
from machinery.locations import describe_url
from tests.firsthour.support import REPO_ROOT, T, process_env, run_machinery, sqlite_config, worker_argv


def test_relative_sqlite_paths_in_a_config_file_are_relative_to_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    path = folder / "machinery.yml"
    path.write_text("broker: sqlite:///data/queue.db?synchronous=full\nresult_backend: sqlite:///results.db\n")
    config = load_config(path, environ={})
    assert config.broker_url == f"sqlite:///{folder}/data/queue.db?synchronous=full"
    assert config.result_backend == f"sqlite:///{folder}/results.db"


def test_absolute_and_non_sqlite_urls_in_a_config_file_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "machinery.yml"
    path.write_text("broker: sqlite:////var/tmp/q.db\nresult_backend: redis://127.0.0.1:6379/0\n")
    config = load_config(path, environ={})
    assert (config.broker_url, config.result_backend) == ("sqlite:////var/tmp/q.db", "redis://127.0.0.1:6379/0")


def test_relative_paths_from_the_environment_stay_relative_to_the_working_directory(tmp_path: Path) -> None:
    config = load_config(environ={"MACHINERY_BROKER_URL": "sqlite:///here.db"})
    assert config.broker_url == "sqlite:///here.db"
    assert describe_url(config.broker_url) == f"sqlite:///{Path.cwd() / 'here.db'}"


def test_describe_url_masks_passwords() -> None:
    assert describe_url("amqp://guest:secret@host:5672/") == "amqp://guest:***@host:5672/"


def test_the_worker_logs_the_absolute_paths_it_serves(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path).replace(broker_url="sqlite:///b.db", result_backend="sqlite:///r.db")
    worker = subprocess.Popen(worker_argv("-c", "1"), cwd=tmp_path,
                              env=process_env(config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stderr is not None
        line = worker.stderr.readline()
        while line and "worker consuming" not in line:
            line = worker.stderr.readline()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=T)
    assert f"(broker sqlite:///{tmp_path}/b.db, results sqlite:///{tmp_path}/r.db)" in line


def test_a_timeout_with_no_worker_ever_seen_says_so_and_names_the_store(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    done = run_machinery(config, "send", "add", "1", "--wait", "--timeout", "0.2")
    uuid = done.stdout.strip()
    store = config.result_backend
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"machinery send: error: task {uuid} did not finish within 0.2s; no worker heartbeat was ever seen in the "
        f"result store {store}; is a worker running with it? (sent to broker {config.broker_url})"
    )


def test_a_timeout_after_the_worker_stopped_names_its_broker_and_queue(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    worker = subprocess.Popen(worker_argv("-c", "1"), cwd=REPO_ROOT,
                              env=process_env(config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stderr is not None
        for line in worker.stderr:
            if "worker consuming" in line:
                break
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=T)
    assert worker.returncode == 0
    with App(config) as app, pytest.raises(ResultTimeout) as info:
        app.send_task(Signature("add", [1])).get(timeout=0.1)
    assert f"no worker is alive on the result store {config.result_backend}: the last one (" in str(info.value)
    assert f"broker {config.broker_url}, queues {config.default_queue}) stopped " in str(info.value)


def test_a_live_worker_is_described_so_a_caller_can_compare_brokers() -> None:
    backend = MemoryBackend()
    beat = Heartbeat(backend, broker="sqlite:////elsewhere/q.db", queues=["tasks"], interval=60)
    beat.start()
    try:
        hint = silence_hint(backend)
    finally:
        beat.stop()
    assert hint.startswith("a worker is alive on the result store MemoryBackend (")
    assert hint.endswith(f"({beat.worker}, broker sqlite:////elsewhere/q.db, queues tasks)")


def test_a_heartbeat_is_renewed_while_the_worker_runs() -> None:
    backend = MemoryBackend()
    beat = Heartbeat(backend, broker="memory://", queues=["q"], interval=0.05)
    beat.start()
    try:
        first = last_beat(backend)
        assert first is not None
        time.sleep(0.2)
        later = last_beat(backend)
        assert later is not None and later.at > first.at and later.alive
    finally:
        beat.stop()
    stopped = last_beat(backend)
    assert stopped is not None and stopped.stopped and not stopped.alive
    assert HEARTBEAT_INTERVAL <= 30  # stale after three intervals: a dead worker shows within ~a minute


def test_a_timeout_in_an_app_carries_the_hint_as_an_attribute() -> None:
    config = Config(broker_url="memory://firsthour-hint", result_backend="memory://firsthour-hint")
    with App(config) as app, pytest.raises(ResultTimeout) as info:
        app.send_task(Signature("add", [1])).get(timeout=0.05)
    assert info.value.hint.startswith("no worker heartbeat was ever seen in the result store")


def test_the_examples_use_one_database_beside_their_config_from_any_directory(tmp_path: Path) -> None:
    code = "from examples.app import app; print(app.config.broker_url, app.config.result_backend)"
    env = {k: v for k, v in process_env(sqlite_config(tmp_path)).items() if not k.startswith("MACHINERY_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=T, check=False)
    assert done.returncode == 0, done.stderr
    expected = f"sqlite:///{REPO_ROOT / 'examples' / 'machinery.sqlite3'}"
    assert done.stdout.split() == [expected, expected]


def test_send_and_queues_with_an_app_use_that_apps_broker(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(
        "from machinery import App, Config\n"
        f"app = App(Config(broker_url='sqlite:///{tmp_path}/app.db', result_backend='none', default_queue='mine'))\n"
    )
    config = sqlite_config(tmp_path)  # the environment points elsewhere: -A wins
    sent = run_machinery(config, "send", "-A", "myapp:app", "add", "1", cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    shown = run_machinery(config, "queues", "-A", "myapp:app", cwd=tmp_path)
    assert shown.stdout.splitlines()[1].split()[:2] == ["mine", "1"]


def test_queues_says_whether_a_worker_serves_the_result_store(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    shown = run_machinery(config, "queues")
    assert shown.returncode == 0
    assert shown.stdout.splitlines()[-1] == (
        f"no worker heartbeat was ever seen in the result store {config.result_backend}; is a worker running with it?"
    )
