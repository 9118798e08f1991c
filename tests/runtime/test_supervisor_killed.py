"""Worker processes do not outlive a supervisor killed outright: SIGKILL forwards nothing, and each
worker runs in a process group of its own, so each watches that its supervisor is still its parent
and stops cleanly once it is not."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from machinery import App, Config, Signature
from tests.support.processes import WorkerProcess


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie nobody reaped has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_worker_processes_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tasks.sqlite3'}"
    config = Config(broker_url=url, result_backend=url)
    supervisor = WorkerProcess(config, tmp_path / "worker.log", "--processes", "2", "-c", "1")
    pids: set[int] = set()
    try:
        with App(config) as app:
            deadline = time.monotonic() + 60
            while len(pids) < 2 and time.monotonic() < deadline:
                results = app.send_tasks([Signature("pid", [0.05]) for _ in range(8)])
                pids |= {int(str(r.get(timeout=30))) for r in results}
            assert len(pids) == 2, supervisor.output()
        supervisor.kill()
        deadline = time.monotonic() + 20
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_running(pid) for pid in pids), supervisor.output()
        assert supervisor.output().count("is gone: stopping this worker process") == 2, supervisor.output()
    finally:
        supervisor.kill()
        for pid in pids:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
