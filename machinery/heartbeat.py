"""Worker heartbeats in the result store, so that a caller whose result never comes can be told
whether any worker uses the same store (and which broker it consumes).

A running worker writes one record every ``HEARTBEAT_INTERVAL`` seconds under the reserved id
``HEARTBEAT_ID`` through the ordinary ``ResultBackend.set`` (so every backend keeps it, and it
expires with the other results): the worker's host and pid, its broker and queues, and whether it
stopped. The latest writer wins; one record is enough to answer "has a worker been here lately?"."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from machinery.backends.base import ResultBackend
from machinery.jsonvalues import JSONInput, freeze
from machinery.states import TaskResult, TaskState

__all__ = ["HEARTBEAT_ID", "HEARTBEAT_INTERVAL", "Beat", "Heartbeat", "last_beat", "silence_hint", "store_name"]

log = logging.getLogger("machinery.heartbeat")

#: The result-store id the heartbeat record is kept under (no task id looks like it).
HEARTBEAT_ID = "machinery:worker-heartbeat"
#: Seconds between two heartbeats of a running worker.
HEARTBEAT_INTERVAL = 10.0
#: A heartbeat older than this many intervals means its worker is gone.
_STALE_AFTER = 3


@dataclass(frozen=True, slots=True)
class Beat:
    """One worker's latest heartbeat."""

    worker: str
    broker: str
    queues: tuple[str, ...]
    at: float
    stopped: bool

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.at)

    @property
    def alive(self) -> bool:
        return not self.stopped and self.age < HEARTBEAT_INTERVAL * _STALE_AFTER


class Heartbeat:
    """Writes a worker's heartbeat now and every ``interval`` seconds until ``stop()``, which
    writes a last one saying it stopped. A failed write is logged and tried again next time."""

    def __init__(
        self, backend: ResultBackend, *, broker: str, queues: Sequence[str], interval: float = HEARTBEAT_INTERVAL
    ) -> None:
        self.backend = backend
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.broker = broker
        self.queues = tuple(queues)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Write the first heartbeat (its failure raises: the store cannot be reached), then keep
        writing them on a thread."""
        self.backend.set(self._record(stopped=False))
        self._thread = threading.Thread(target=self._loop, name="machinery-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._write(stopped=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._write(stopped=False)

    def _record(self, *, stopped: bool) -> TaskResult:
        record: dict[str, JSONInput] = {
            "worker": self.worker, "broker": self.broker, "queues": list(self.queues),
            "at": time.time(), "stopped": stopped,
        }
        return TaskResult(HEARTBEAT_ID, TaskState.SUCCESS, "heartbeat", freeze(record))

    def _write(self, *, stopped: bool) -> None:
        try:
            self.backend.set(self._record(stopped=stopped))
        except Exception as exc:
            log.warning("could not write the worker heartbeat: %s", exc)


def last_beat(backend: ResultBackend) -> Beat | None:
    """The latest heartbeat in ``backend``, or None when no worker wrote one (or it expired)."""
    stored = backend.get(HEARTBEAT_ID)
    value = stored.result if stored is not None else None
    if not isinstance(value, Mapping):
        return None
    try:
        queues = value["queues"]
        return Beat(
            worker=str(value["worker"]), broker=str(value["broker"]),
            queues=tuple(str(q) for q in queues) if isinstance(queues, Sequence) else (),
            at=float(value["at"]), stopped=bool(value["stopped"]),  # type: ignore[arg-type]
        )
    except (KeyError, TypeError, ValueError):
        return None


def store_name(backend: ResultBackend) -> str:
    """How to name ``backend`` to a user: a SQLite store by its absolute file path, others by their
    repr (or class name)."""
    path = getattr(getattr(backend, "options", None), "path", None)
    if isinstance(path, str):
        return f"sqlite:///{os.path.abspath(path)}"
    if type(backend).__repr__ is object.__repr__:
        return type(backend).__name__
    return repr(backend)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"


def silence_hint(backend: ResultBackend) -> str:
    """What the heartbeats in ``backend`` say about the workers that could have run a task whose
    result did not come: none ever, none alive, or the live one's broker and queues (to compare with
    where the task went). Empty when the store cannot be read."""
    try:
        beat = last_beat(backend)
    except Exception:
        return ""
    store = store_name(backend)
    if beat is None:
        return f"no worker heartbeat was ever seen in the result store {store}; is a worker running with it?"
    where = f"{beat.worker}, broker {beat.broker}, queues {', '.join(beat.queues)}"
    if beat.alive:
        return f"a worker is alive on the result store {store} ({where})"
    ago = _ago(beat.age)
    what = f"stopped {ago}" if beat.stopped else f"sent its last heartbeat {ago}"
    return f"no worker is alive on the result store {store}: the last one ({where}) {what}"
