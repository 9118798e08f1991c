"""Prometheus metrics, scraped over HTTP and checked against what ran: a worker in this process on
every broker, and one endpoint for a supervisor's worker processes on SQLite and RabbitMQ."""

from __future__ import annotations

from pathlib import Path

import pytest

from machinery import App, Config, Delay, Hook, Signature, TaskCall, TaskFailed
from machinery.hooks import RunDecision
from machinery.metrics import enable_metrics
from tests.runtime.brokers import FACTORIES
from tests.runtime.tasks import register_outcome_tasks
from tests.support.http import free_port, scrape
from tests.support.processes import worker_process
from tests.support.waiting import TIMEOUT, eventually
from tests.support.workers import running


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_worker_s_metrics_match_what_it_ran(app: App) -> None:
    register_outcome_tasks(app)

    class DelayFirstRun(Hook):
        def before_run(self, call: TaskCall) -> RunDecision | None:
            return Delay(0.01) if call.signature.args == (0, 1) and call.delivery_count == 1 else None

    app.hooks.add(DelayFirstRun())
    queue = app.config.default_queue
    server = enable_metrics(app, 0)
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        before = scrape(url)
        assert value(before, "machinery_worker_up") == 0
        with running(app, concurrency=2):
            assert eventually(lambda: value(scrape(url), "machinery_worker_up") == 1)
            results = [app.send_task(Signature("add", [i, 1])) for i in range(5)]
            assert [r.get(timeout=TIMEOUT) for r in results] == [i + 1 for i in range(5)]
            for work in (Signature("boom", []), Signature("flaky", [], retry_count=2)):
                with pytest.raises(TaskFailed):
                    app.send_task(work).get(timeout=TIMEOUT)
            app.broker.publish(queue, b"{not json")
            assert eventually(lambda: value(scrape(url), "machinery_dead_letters_total", queue=queue) == 1)

            def settled() -> bool:  # a task's metrics follow its stored outcome, which wakes get()
                samples = scrape(url)
                total = sum(v for (name, _), v in samples.items() if name == "machinery_tasks_total")
                return total == 7 and value(samples, "machinery_tasks_running") == 0

            assert eventually(settled)
            during = scrape(url)
        after = scrape(url)
    finally:
        server.close()
    assert value(during, "machinery_tasks_total", task="add", state="SUCCESS") == 5
    assert value(during, "machinery_tasks_total", task="boom", state="FAILURE") == 1
    assert value(during, "machinery_tasks_total", task="flaky", state="FAILURE") == 1
    assert value(during, "machinery_task_retries_total", task="flaky") == 2
    assert value(during, "machinery_task_duration_seconds_count", task="add") == 5
    assert value(during, "machinery_tasks_requeued_total", task="add") == 1
    assert value(during, "machinery_task_duration_seconds_count", task="flaky") == 3  # two retries, one failure
    assert value(during, "machinery_task_duration_seconds_bucket", task="add", le="+Inf") == 5
    assert value(during, "machinery_tasks_running") == 0
    assert value(during, "machinery_queue_messages", queue=queue, where="dead") == 1
    assert value(during, "machinery_queue_messages", queue=queue, where="ready") == 0
    assert value(after, "machinery_worker_up") == 0


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["sqlite", "amqp"])
def test_one_endpoint_sums_a_supervisor_s_worker_processes(broker: str, tmp_path: Path) -> None:
    config: Config = FACTORIES[broker](tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with App(config) as app, worker_process(config, tmp_path / "worker.log", "-P", "2", "-c", "2",
                                            "--metrics-port", str(port)) as worker:
        assert eventually(lambda: _up(url) == 2), worker.output()
        results = [app.send_task(Signature("pid", [0.05])) for _ in range(20)]
        pids = {r.get(timeout=TIMEOUT) for r in results}
        with pytest.raises(TaskFailed):
            app.send_task(Signature("fail", [1])).get(timeout=TIMEOUT)
        assert eventually(lambda: value(scrape(url), "machinery_tasks_total", task="fail", state="FAILURE") == 1)
        assert eventually(lambda: value(scrape(url), "machinery_tasks_total", task="pid", state="SUCCESS") == 20)
        samples = scrape(url)
        assert value(samples, "machinery_tasks_total", task="pid", state="SUCCESS") == 20
        assert value(samples, "machinery_tasks_total", task="fail", state="FAILURE") == 1
        assert value(samples, "machinery_task_duration_seconds_count", task="pid") == 20
        assert value(samples, "machinery_worker_up") == 2
        assert value(samples, "machinery_queue_messages", queue=config.default_queue, where="ready") == 0
        assert len(pids) >= 1
        assert worker.stop() == 0, worker.output()


def _up(url: str) -> float:
    try:
        return value(scrape(url), "machinery_worker_up")
    except OSError:
        return -1.0
