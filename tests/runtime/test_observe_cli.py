"""``machinery events``, ``inspect`` and ``dashboard`` against worker processes publishing events,
on SQLite and RabbitMQ; the dashboard's page loaded in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from machinery import App, Config, Signature, TaskFailed, chain
from tests.runtime.brokers import FACTORIES
from tests.support.http import fetch
from tests.support.names import unique_name
from tests.support.processes import REPO_ROOT, process_env, worker_process
from tests.support.waiting import TIMEOUT, eventually

pytestmark = pytest.mark.slow

BROKERS = ["sqlite", "amqp"]
#: Heartbeats often enough for a quick test.
EVENTS_ENV = {"MACHINERY_EVENTS": "1", "MACHINERY_HEARTBEAT_INTERVAL": "0.5"}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "machinery", "--log-level", "WARNING", *args]


@contextmanager
def started(config: Config, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A ``machinery`` command running for the ``with`` block (SIGTERM, then SIGKILL at its end)."""
    proc = subprocess.Popen(command(*args), cwd=REPO_ROOT, env=process_env(config, **EVENTS_ENV),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for_line(stream: object, prefix: str) -> str:
    """The first line of ``stream`` starting with ``prefix`` (read until it comes)."""
    assert hasattr(stream, "readline")
    for _ in range(100):
        line: str = stream.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting with {prefix!r}")


def events_config(broker: str, tmp_path: Path) -> Config:
    return FACTORIES[broker](tmp_path).replace(events=True, heartbeat_interval=0.5)


@pytest.mark.parametrize("broker", BROKERS)
def test_events_tails_what_the_workers_do(broker: str, tmp_path: Path) -> None:
    config = events_config(broker, tmp_path)
    with (
        started(config, "events", "--json", "--type", "task-succeeded", "--type", "task-failed",
                "--count", "4", "--timeout", str(TIMEOUT)) as tail,
        App(config) as app,
        worker_process(config, tmp_path / "worker.log", "-c", "2", **EVENTS_ENV) as worker,
    ):
        wait_for_line(tail.stderr, "machinery events: following")
        result = app.send_task(chain(Signature("add", [1, 1]), Signature("add", [5, 6]), Signature("multiply", [4])))
        assert result.get(timeout=TIMEOUT) == 52.0
        with pytest.raises(TaskFailed):
            app.send_task(Signature("fail", [1])).get(timeout=TIMEOUT)
        out, err = tail.communicate(timeout=TIMEOUT)
        assert tail.returncode == 0, err + worker.output()
    events = [json.loads(line) for line in out.splitlines()]
    # Events of tasks run on different threads may come in either order: a task's outcome is
    # stored (and its caller woken) before its event is queued.
    assert sorted((e["type"], e["name"]) for e in events) == [
        ("task-failed", "fail"), ("task-succeeded", "add"), ("task-succeeded", "add"), ("task-succeeded", "multiply"),
    ]
    succeeded = [e for e in events if e["type"] == "task-succeeded"]
    assert {e["uuid"] for e in succeeded} == {s.task_uuid for s in result.steps}
    [failed] = [e for e in events if e["type"] == "task-failed"]
    assert failed["error"] == "cannot process [1]"
    assert all(e["duration"] >= 0 for e in events)


@pytest.mark.parametrize("broker", BROKERS)
def test_inspect_lists_live_workers_their_tasks_and_queue_depths(broker: str, tmp_path: Path) -> None:
    config = events_config(broker, tmp_path)
    idle = unique_name("idle")  # a queue no worker consumes

    def inspect(*args: str) -> dict[str, list[dict[str, Any]]]:
        done = subprocess.run(command("inspect", "--json", "-Q", idle, *args), cwd=REPO_ROOT,
                              env=process_env(config), capture_output=True, text=True, timeout=TIMEOUT, check=False)
        assert done.returncode == 0, done.stderr
        report: dict[str, list[dict[str, Any]]] = json.loads(done.stdout)
        return report

    report = {}
    with (
        App(config) as app,
        worker_process(config, tmp_path / "a.log", "-c", "1", **EVENTS_ENV) as first,
        worker_process(config, tmp_path / "b.log", "-c", "1", **EVENTS_ENV),
    ):
        assert eventually(lambda: len(inspect("--wait", "1.2")["workers"]) == 2, interval=0.2), first.output()
        napping = app.send_task(Signature("sleep", [3.0]))
        app.send_tasks([Signature("add", [i, i], routing_key=idle) for i in range(2)])

        def napping_seen() -> bool:
            nonlocal report
            report = inspect("--wait", "1.2")
            return any(t["uuid"] == napping.task_uuid for w in report["workers"] for t in w["running"])

        assert eventually(napping_seen, interval=0.2), report
        assert len(report["workers"]) == 2
        [runner] = [w for w in report["workers"] if w["running"]]
        assert [t["name"] for t in runner["running"]] == ["sleep"]
        assert all(w["queues"] == [config.default_queue] and w["concurrency"] == 1 for w in report["workers"])
        depths = {q["queue"]: q for q in report["queues"]}
        assert set(depths) == {config.default_queue, idle}
        assert (depths[idle]["ready"], depths[idle]["delayed"], depths[idle]["dead"]) == (2, 0, 0)
        napping.get(timeout=TIMEOUT)
    # Both stopped cleanly (worker-offline): none is live any more.
    done = subprocess.run(command("inspect", "--wait", "0.5"), cwd=REPO_ROOT, env=process_env(config),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 live workers"), done.stdout


def test_inspect_sees_each_process_of_a_supervised_worker(tmp_path: Path) -> None:
    config = FACTORIES["sqlite"](tmp_path)  # events off in the config: --events turns them on
    env = {"MACHINERY_HEARTBEAT_INTERVAL": "0.5"}
    with worker_process(config, tmp_path / "worker.log", "-P", "2", "-c", "1", "--events", **env) as worker:

        def live() -> list[dict[str, Any]]:
            done = subprocess.run(command("inspect", "--json", "--wait", "1"), cwd=REPO_ROOT,
                                  env=process_env(config, **env), capture_output=True, text=True,
                                  timeout=TIMEOUT, check=False)
            assert done.returncode == 0, done.stderr
            workers: list[dict[str, Any]] = json.loads(done.stdout)["workers"]
            return workers

        assert eventually(lambda: len(live()) == 2, interval=0.2), worker.output()
        assert worker.stop() == 0, worker.output()
    assert live() == []


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def browse(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium loading ``url`` with its scripts given 8 s of (virtual) time."""
    browser = chromium()
    if browser is None:
        if os.environ.get("MACHINERY_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required (MACHINERY_REQUIRE_CHROMIUM) and not installed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--window-size=1280,1100", "--virtual-time-budget=8000", *extra, url],
        capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize("broker", BROKERS)
def test_the_dashboard_page_in_headless_chromium(broker: str, tmp_path: Path) -> None:
    config = events_config(broker, tmp_path)
    with (
        App(config) as app,
        started(config, "dashboard", "--port", "0") as dashboard,
        worker_process(config, tmp_path / "worker.log", "-c", "2", **EVENTS_ENV) as worker,
    ):
        url = wait_for_line(dashboard.stdout, "dashboard at ").split()[-1]
        assert eventually(lambda: '"workers": [{' in fetch(url + "api/state")), worker.output()
        result = app.send_task(chain(Signature("add", [1, 1]), Signature("add", [5, 6]), Signature("multiply", [4])))
        assert result.get(timeout=TIMEOUT) == 52.0
        with pytest.raises(TaskFailed):
            app.send_task(Signature("fail", [7])).get(timeout=TIMEOUT)
        app.broker.publish(config.default_queue, b"{broken")

        def seen_all() -> bool:
            state = json.loads(fetch(url + "api/state"))
            finished = sum(ok + bad for _, ok, bad in state["throughput"]["points"])
            return finished == 4 and len(state["dead_letters"]) == 1

        assert eventually(seen_all)
        dom = browse(url, "--dump-dom")
        assert dom.returncode == 0, dom.stderr
        screenshot = tmp_path / "dashboard.png"
        shot = browse(url, f"--screenshot={screenshot}")
        assert shot.returncode == 0, shot.stderr
        state = json.loads(fetch(url + "api/state"))
    page = dom.stdout
    assert 'data-loaded="yes"' in page, page[:2000]
    [live] = state["workers"]
    assert f"<td>{live['name']}</td>" in page
    for step in result.steps:
        assert step.task_uuid in page
    assert page.count('class="state SUCCESS"') == 3
    assert page.count('class="state FAILURE"') == 1
    assert "cannot process [7]" in page
    assert ">52.0<" in page  # the chain's result, read from the result store
    assert "undecodable message" in page  # the dead letter's reason
    assert 'data-total="4"' in page  # four tasks finished in the chart
    assert page.count('class="bar succeeded"') >= 1 and page.count('class="bar failed"') == 1
    assert f"<td>{config.default_queue}</td>" in page
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    keep = os.environ.get("MACHINERY_DASHBOARD_SCREENSHOT")
    if keep:
        shutil.copyfile(screenshot, keep)
