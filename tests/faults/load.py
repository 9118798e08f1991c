"""The load run shared by the load tests: producer processes send ``record`` tasks while worker
processes consume them; every run of a task is counted by its key in a SQLite side channel."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from machinery.config import Config
from tests.support.effects import EFFECTS_ENV, effects
from tests.support.processes import REPO_ROOT, WorkerProcess, process_env

__all__ = ["LoadReport", "run_load"]


@dataclass
class LoadReport:
    expected: set[str]
    runs: Counter[str]
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> set[str]:
        return self.expected - set(self.runs)

    @property
    def duplicates(self) -> dict[str, int]:
        """Keys that ran more than once, with their run count."""
        return {key: n for key, n in self.runs.items() if n > 1}

    def summary(self) -> str:
        return (f"{len(self.expected)} tasks, {len(self.lost)} lost, {len(self.duplicates)} run more than once "
                f"({sum(self.duplicates.values()) - len(self.duplicates)} extra runs), {self.seconds:.1f}s")


def run_load(
    config: Config,
    tmp: Path,
    *,
    producers: int = 3,
    per_producer: int = 1000,
    workers: int = 3,
    concurrency: int = 2,
    env: dict[str, str] | None = None,
    during: Callable[[], str] | None = None,
    during_at: float = 0.3,
    timeout: float = 240.0,
) -> LoadReport:
    """Start ``workers`` worker processes and ``producers`` producer processes sending
    ``per_producer`` tasks each; once ``during_at`` of the tasks ran, call ``during`` (a fault; its
    text goes into the notes). Waits until every task ran or ``timeout`` passed."""
    effects_file = tmp / "effects.sqlite3"
    extra = {EFFECTS_ENV: str(effects_file), **(env or {})}
    expected = {f"p{p}-{i}" for p in range(producers) for i in range(per_producer)}
    started = time.monotonic()
    pool = [WorkerProcess(config, tmp / f"worker-{w}.log", "-c", str(concurrency), **extra) for w in range(workers)]
    senders: list[subprocess.Popen[bytes]] = []
    notes: list[str] = []
    try:
        for p in range(producers):
            with (tmp / f"producer-{p}.log").open("ab") as out:
                senders.append(subprocess.Popen(
                    [sys.executable, "-m", "tests.faults.producer", f"p{p}", str(per_producer)],
                    env=process_env(config, **extra), cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                ))
        deadline = started + timeout
        fired = during is None
        while time.monotonic() < deadline:
            ran = effects(effects_file)
            if not fired and len(ran) >= during_at * len(expected):
                assert during is not None
                notes.append(during())
                fired = True
            if fired and expected <= set(ran) and all(s.poll() is not None for s in senders):
                break
            time.sleep(0.25)
        for p, sender in enumerate(senders):
            code = sender.wait(max(1.0, deadline - time.monotonic()))
            text = (tmp / f"producer-{p}.log").read_text(errors="replace")
            if code != 0:
                notes.append(f"producer {p} exited {code}: {text[-2000:]}")
        time.sleep(1.0)  # a late duplicate still gets counted
    finally:
        for sender in senders:
            if sender.poll() is None:
                sender.kill()
                sender.wait(10)
        for worker in pool:
            code = worker.stop(timeout=60)
            if code != 0:
                notes.append(f"worker exited {code}: {worker.output()[-2000:]}")
    return LoadReport(expected, Counter(effects(effects_file)), time.monotonic() - started, notes)
