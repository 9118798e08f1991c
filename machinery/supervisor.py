"""Several worker processes under one supervisor (``machinery worker --processes P``).

The supervisor starts P ``machinery worker`` processes, starts again any that dies unexpectedly
(with a capped back-off when one keeps dying at once), and forwards SIGTERM/SIGINT to all of them
for a clean stop: each finishes its running tasks and gives back the rest. A second signal is
forwarded too, which makes the workers exit at once. Each worker runs in its own process group,
so a Ctrl-C at a terminal reaches it once, through the supervisor.

A worker process whose task ran past its hard time limit records the failure, lets its other
tasks finish and exits with ``EXIT_REPLACE_ME`` (the stuck thread goes with it); the supervisor
starts a fresh one at once.

A supervisor killed outright (SIGKILL, the OOM killer) cannot forward anything, and its workers, in
process groups of their own, would run on as orphans. Each worker process watches for that
(``watch_supervisor``): once its parent is no longer the supervisor that started it, it stops
itself as SIGTERM would, finishing its running tasks.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType

__all__ = ["EXIT_REPLACE_ME", "SUPERVISED_ENV", "SUPERVISOR_PID_ENV", "Supervisor", "watch_supervisor"]

log = logging.getLogger("machinery.supervisor")

#: A worker that exits sooner than this after its start counts as failing at once.
_QUICK_EXIT = 5.0
_MAX_BACKOFF = 30.0

#: Set to "1" in the environment of each worker process the supervisor starts.
SUPERVISED_ENV = "MACHINERY_SUPERVISED"
#: The supervisor's process ID, in the environment of each worker process it starts.
SUPERVISOR_PID_ENV = "MACHINERY_SUPERVISOR_PID"
#: Seconds between a worker process's checks that its supervisor is still its parent.
_PARENT_CHECK = 0.5
#: Exit status of a worker process that stopped to be replaced (a task thread was given up at its
#: hard time limit; only a new process gets rid of it).
EXIT_REPLACE_ME = 75


class Supervisor:
    """Runs ``processes`` copies of the command ``worker_argv`` (arguments of ``python -m machinery``),
    with the environment ``env`` (default: this one); ``on_exit(pid)`` is called for each worker
    process that ended."""

    def __init__(
        self,
        worker_argv: Sequence[str],
        processes: int,
        *,
        env: Mapping[str, str] | None = None,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.command = [sys.executable, "-m", "machinery", *worker_argv]
        self.processes = processes
        self._children: list[subprocess.Popen[bytes] | None] = [None] * processes
        self._started_at = [0.0] * processes
        self._quick_exits = [0] * processes
        self._next_start = [0.0] * processes
        self._signals: list[int] = []
        self._env = dict(env) if env is not None else None
        self._on_exit = on_exit

    def _start(self, slot: int) -> None:
        env = {**(self._env or os.environ), SUPERVISED_ENV: "1", SUPERVISOR_PID_ENV: str(os.getpid())}
        if sys.version_info >= (3, 11):
            child = subprocess.Popen(self.command, process_group=0, env=env)
        else:  # 3.10 has no process_group: the same own group (setpgid(0, 0)) in the child before exec
            child = subprocess.Popen(self.command, preexec_fn=os.setpgrp, env=env)  # noqa: PLW1509
        self._children[slot] = child
        self._started_at[slot] = time.monotonic()
        log.info("worker process %d started (pid %d)", slot, child.pid)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _forward(self, signum: int) -> None:
        for child in self._children:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    def run(self) -> int:
        """Supervise until a signal stops every worker; the exit status (0 when all stopped cleanly)."""
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.getsignal(sig) for sig in handled}
        for sig in handled:
            signal.signal(sig, self._on_signal)
        forwarded = 0
        try:
            for slot in range(self.processes):
                self._start(slot)
            while True:
                while forwarded < len(self._signals):
                    signum = self._signals[forwarded]
                    forwarded += 1
                    log.info("signal %s: forwarding to %d worker processes", signal.Signals(signum).name,
                             self.processes)
                    self._forward(signum)
                if self._signals:
                    if all(c is None or c.poll() is not None for c in self._children):
                        break
                else:
                    self._restart_dead()
                time.sleep(0.1)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        for child in self._children:
            if child is not None:
                self._exited(child.pid)
        codes = [c.returncode for c in self._children if c is not None]
        # A child killed by the very signal forwarded to it had not installed its handlers yet
        # (it was starting, so it held no messages): that is a clean stop too.
        clean = {0, EXIT_REPLACE_ME, *(-signum for signum in self._signals[:1])}
        return 0 if all(code in clean for code in codes) else 1

    def _restart_dead(self) -> None:
        now = time.monotonic()
        for slot, child in enumerate(self._children):
            if child is not None and child.poll() is None:
                continue
            if child is not None and child.returncode == EXIT_REPLACE_ME:
                log.info("worker process %d (pid %d) stopped to be replaced (a task ran past its time limit); "
                         "starting another", slot, child.pid)
                self._children[slot] = None
                self._quick_exits[slot] = 0
                self._next_start[slot] = now
            elif child is not None:
                quick = now - self._started_at[slot] < _QUICK_EXIT
                self._quick_exits[slot] = self._quick_exits[slot] + 1 if quick else 0
                backoff = min(_MAX_BACKOFF, 0.5 * 2 ** (self._quick_exits[slot] - 1)) if quick else 0.0
                log.warning("worker process %d (pid %d) exited with status %s; starting another in %.1fs",
                            slot, child.pid, child.returncode, backoff)
                self._exited(child.pid)
                self._children[slot] = None
                self._next_start[slot] = now + backoff
            if now >= self._next_start[slot]:
                self._start(slot)

    def _exited(self, pid: int) -> None:
        if self._on_exit is not None:
            try:
                self._on_exit(pid)
            except Exception:
                log.exception("cleaning up after worker process %d failed", pid)


def watch_supervisor(interval: float = _PARENT_CHECK) -> threading.Thread | None:
    """In a worker process a supervisor started: a daemon thread that sends this process SIGTERM
    (a clean stop) once its parent is no longer that supervisor, which was killed without
    forwarding a signal. None outside a supervised process."""
    try:  # taken out of the environment: a process this one starts has another parent
        supervisor = int(os.environ.pop(SUPERVISOR_PID_ENV, ""))
    except ValueError:
        return None

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(interval)
        log.warning("the supervisor (pid %d) is gone: stopping this worker process", supervisor)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="machinery-supervisor-watch", daemon=True)
    thread.start()
    return thread
