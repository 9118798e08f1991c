"""Recording RECEIVED and STARTED without paying for them on quick tasks.

A message that waits in a worker's buffer, or a task that runs, longer than ``after`` seconds gets
its RECEIVED or STARTED state written by one background thread; a task that finishes sooner gets
only its final state. That saves two result writes per short task (the states could not have been
seen anyway), while anything a caller could watch still shows where it is. A final state is never
overwritten: ``finish`` waits for a progress write in flight and stops any later one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from machinery._speedups import decode
from machinery.backends.base import ResultBackend
from machinery.brokers.base import Delivery
from machinery.errors import DecodeError
from machinery.signature import Signature
from machinery.states import TaskResult, TaskState

__all__ = ["ProgressTracker"]

log = logging.getLogger("machinery.worker")


@dataclass(slots=True)
class _Entry:
    delivery: Delivery
    since: float
    phase: TaskState
    written: TaskState | None = None
    sig: Signature | None = None


class ProgressTracker:
    """Writes RECEIVED/STARTED for deliveries held longer than ``after`` seconds.

    The calls made for every delivery (``received``, ``started``, ``finish``) take no lock: each is
    one dictionary operation, atomic in CPython. Only ``tick`` (the background thread) and
    ``give_back`` take the lock. ``tick`` checks an entry is still there, under the lock, right
    before writing its state, and raises ``_writing`` first; so a ``finish`` that removed its entry
    and sees ``_writing`` raised waits for the lock, and no progress write lands after it."""

    def __init__(self, backend: ResultBackend, after: float) -> None:
        self.backend = backend
        self.after = after
        self._lock = threading.Lock()
        self._writing = False
        """True while ``tick`` may be writing (under ``_lock``)."""
        self._entries: dict[int, _Entry] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="machinery-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def received(self, deliveries: Iterable[Delivery]) -> None:
        """``deliveries`` were fetched and wait for a task thread."""
        now = time.monotonic()
        self._entries.update([(d.tag, _Entry(d, now, TaskState.RECEIVED)) for d in deliveries])

    def started(self, delivery: Delivery, sig: Signature) -> None:
        """The task of ``delivery`` starts running now."""
        now = time.monotonic()
        entry = self._entries.get(delivery.tag)
        if entry is None:
            self._entries[delivery.tag] = _Entry(delivery, now, TaskState.STARTED, sig=sig)
        else:  # a RECEIVED being written meanwhile is followed by STARTED at a later tick
            entry.sig, entry.phase, entry.since = sig, TaskState.STARTED, now

    def finish(self, delivery: Delivery) -> None:
        """Forget ``delivery``: its final state (or nothing) follows. Waits for a write in flight."""
        if self._entries.pop(delivery.tag, None) is not None and self._writing:
            with self._lock:
                pass

    def give_back(self, delivery: Delivery) -> None:
        """Forget ``delivery``, which goes back to its queue: a RECEIVED written for it is
        dropped, so its task reads PENDING again."""
        with self._lock:
            entry = self._entries.pop(delivery.tag, None)
            if entry is not None and entry.written is not None and entry.sig is not None:
                self.backend.forget(entry.sig.uuid)

    def _loop(self) -> None:
        interval = max(self.after, 0.01)
        while not self._stop.wait(interval):
            try:
                self.tick()
            except Exception:
                log.exception("recording task progress failed")

    def tick(self, now: float | None = None) -> int:
        """Write the states now due; how many were written."""
        now = time.monotonic() if now is None else now
        written = 0
        entries = self._entries
        with self._lock:
            self._writing = True
            try:
                for tag, entry in list(entries.items()):
                    if entry.written is entry.phase or now - entry.since < self.after:
                        continue
                    sig = entry.sig
                    if sig is None:
                        try:
                            sig = entry.sig = decode(entry.delivery.body)
                        except DecodeError:
                            entries.pop(tag, None)
                            continue
                    phase = entry.phase
                    if entries.get(tag) is not entry:  # finished meanwhile: its final state follows
                        continue
                    self.backend.set(TaskResult(sig.uuid, phase, sig.name, None, "", time.time()))
                    entry.written = phase
                    written += 1
            finally:
                self._writing = False
        return written
