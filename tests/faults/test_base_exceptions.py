"""Issue: sys.exit() (any BaseException) in a task killed worker threads silently, stopped a
one-thread worker with status 0, and the message came back to kill the next worker. Now it is the
task's failure: recorded, error callbacks sent, the message acknowledged, the worker running on."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from machinery import Signature, TaskFailed, TaskState
from tests.faults.support import T, fault_app_on, start_worker, stop_worker
from tests.support.waiting import eventually
from tests.support.workers import running

CASES = [
    (Signature("exit", [3]), "SystemExit: 3"),
    (Signature("exit", [0]), "SystemExit: 0"),
    (Signature("interrupt", []), "KeyboardInterrupt"),
    (Signature("generator_exit", []), "GeneratorExit"),
]


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize(("sig", "error"), CASES, ids=[c[1] for c in CASES])
def test_a_base_exception_is_the_tasks_failure_and_the_worker_goes_on(
    tmp_path: Path, concurrency: int, sig: Signature, error: str
) -> None:
    app = fault_app_on(tmp_path)
    callback = Signature("echo", ["from the error callback"])
    with running(app, concurrency=concurrency):
        failing = app.send_task(sig.link_error(callback))
        with pytest.raises(TaskFailed) as caught:
            failing.get(timeout=T)
        assert caught.value.error == error
        assert app.result(callback.uuid).get(timeout=T) == [error, "from the error callback"]
        # Every thread is still there: as many tasks as threads run at once, then more.
        results = app.send_tasks([Signature("sleep", [0.2]) for _ in range(concurrency * 2)])
        assert [r.get(timeout=T) for r in results] == [0.2] * (concurrency * 2)
    assert failing.state is TaskState.FAILURE
    depth = app.broker.depth(app.config.default_queue)
    assert (depth.ready, depth.in_flight, depth.dead) == (0, 0, 0)
    app.close()


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_sys_exit_in_a_task_does_not_stop_a_worker_process(tmp_path: Path, processes: int) -> None:
    app = fault_app_on(tmp_path)
    proc = start_worker(app.config, "-c", "1", "-P", str(processes))
    try:
        for _ in range(3):  # as many as the workers' threads, and more
            with pytest.raises(TaskFailed, match="SystemExit: 0"):
                app.send_task(Signature("exit", [0])).get(timeout=T)
        assert app.send_task(Signature("add", [1, 2])).get(timeout=T) == 3
        assert proc.poll() is None
    finally:
        code, out = stop_worker(proc)
        app.close()
    assert code == 0, out
    assert out.count("FAILURE") >= 3, out


@pytest.mark.slow
def test_a_real_signal_still_stops_the_worker_while_a_task_runs(tmp_path: Path) -> None:
    """A SIGINT to the worker is not a task's KeyboardInterrupt: the running task finishes and the
    worker exits 0."""
    app = fault_app_on(tmp_path)
    proc = start_worker(app.config, "-c", "1")
    try:
        running_task = app.send_task(Signature("sleep", [2.0]))
        assert eventually(lambda: running_task.state is TaskState.STARTED, timeout=T)
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert running_task.get(timeout=T) == 2.0
        assert proc.wait(timeout=T) == 0
        assert time.monotonic() - started < T
    finally:
        code, out = stop_worker(proc)
        app.close()
    assert code == 0, out


def test_a_real_ctrl_c_on_the_thread_running_an_embedded_worker_stops_it_cleanly(tmp_path: Path) -> None:
    """``worker.run()`` on the main thread without launch()'s handlers: a real SIGINT raises
    KeyboardInterrupt there, never in a task (tasks run on task threads): the running task
    finishes, the worker returns."""
    app = fault_app_on(tmp_path)
    worker = app.worker(concurrency=1)
    task = app.send_task(Signature("sleep", [1.0]))

    def interrupt_once_started() -> None:
        if eventually(lambda: task.state is TaskState.STARTED, timeout=T):
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_started, daemon=True).start()
    try:
        worker.run()
    except KeyboardInterrupt:
        pytest.fail("the Ctrl-C escaped the worker")
    assert worker.stopping
    assert task.get(timeout=T) == 1.0
    app.close()
