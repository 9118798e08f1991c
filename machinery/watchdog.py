"""Enforcing time limits on task threads.

One watchdog thread keeps the deadlines of every running task call that has a limit:

- at the soft limit it raises ``SoftTimeLimitExceeded`` inside the task's thread with CPython's
  ``PyThreadState_SetAsyncExc``. Signals cannot do this (Python runs signal handlers on the main
  thread only, and tasks run on task threads). The exception arrives when the thread next runs
  Python code: a task looping in Python gets it at once, a task blocked in one long C call
  (``time.sleep``, a socket read without a timeout) only when that call returns; the hard limit
  covers that case.
- at the hard limit it gives the call up: the call is marked abandoned (whatever it does later is
  ignored), ``TimeLimitExceeded`` is raised in its thread the same way so it unwinds if it ever
  runs Python code again, and ``on_abandon`` is called (the worker records the failure, acks the
  message and replaces the thread or its process).

A call settles its outcome with ``Watch.finish`` under the watch's lock, so a call that returns just
as its limit passes is either finished or abandoned, never both; an exception raised in it after it
finished is withdrawn.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

from machinery.errors import SoftTimeLimitExceeded, TimeLimitExceeded
from machinery.timelimits import TimeLimits

__all__ = ["Abandoned", "Watch", "Watchdog", "raise_in_thread"]

log = logging.getLogger("machinery.worker")

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.restype = ctypes.c_int


def raise_in_thread(ident: int, exc_type: type[BaseException] | None) -> bool:
    """Raise ``exc_type`` in thread ``ident`` when it next runs Python code (None withdraws one not
    raised yet: NULL, not Python's None). True when the thread exists."""
    exc = ctypes.py_object(exc_type) if exc_type is not None else ctypes.c_void_p(None)
    return _set_async_exc(ctypes.c_ulong(ident), exc) == 1  # type: ignore[no-any-return]


class Abandoned(BaseException):
    """Raised by ``Watch.finish`` in a call given up at its hard limit: its outcome must be dropped.
    A BaseException so that nothing on the way mistakes it for the task's own error."""


_RUNNING, _DONE, _ABANDONED = 0, 1, 2
#: Deadlines kept before the first sweep of those whose calls finished.
_COMPACT_MIN = 1024


class Watch:
    """One task call under watch."""

    __slots__ = ("context", "hard_at", "ident", "injected", "label", "limits", "lock", "started", "state")

    def __init__(self, limits: TimeLimits, context: object, label: str = "a task") -> None:
        self.limits = limits
        self.label = label
        """Names the call in log lines."""
        self.context = context
        """What ``on_abandon`` gets (the worker's delivery and signature)."""
        self.ident = threading.get_ident()
        self.lock = threading.Lock()
        self.state = _RUNNING
        self.injected = False
        self.started = time.monotonic()
        self.hard_at = self.started + limits.hard if limits.hard is not None else None

    def finish(self) -> None:
        """The call returned (or raised): settle it. Raises ``Abandoned`` when it was given up."""
        while True:
            try:
                with self.lock:
                    abandoned = self.state == _ABANDONED
                    self.state = _DONE if not abandoned else _ABANDONED
                    if self.injected:
                        raise_in_thread(self.ident, None)
                        self.injected = False
                break
            except (SoftTimeLimitExceeded, TimeLimitExceeded):
                continue  # raised in us between the call's end and the lock: withdrawn above
        if abandoned:
            raise Abandoned

    def _fire(self, exc_type: type[BaseException], abandon: bool) -> bool:
        with self.lock:
            if self.state != _RUNNING:
                return False
            if abandon:
                self.state = _ABANDONED
            self.injected = True
            raise_in_thread(self.ident, exc_type)
            return True


class Watchdog:
    """The thread that enforces the limits of every watched call. ``on_abandon(watch)`` is called
    (on a thread of its own) for each call given up at its hard limit."""

    def __init__(self, on_abandon: Callable[[Watch], None]) -> None:
        self._on_abandon = on_abandon
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Watch, bool]] = []
        self._seq = itertools.count()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._compact_at = _COMPACT_MIN

    def watch(self, limits: TimeLimits, context: object, label: str = "a task") -> Watch:
        """Start watching a call made now on this thread under ``limits``."""
        w = Watch(limits, context, label)
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="machinery-time-limits", daemon=True)
                self._thread.start()
            if len(self._heap) >= self._compact_at:
                # Finished calls leave their deadlines behind (removing each at once would cost a
                # search); drop them all whenever the heap doubled, so it stays within twice the
                # calls running.
                self._heap = [e for e in self._heap if e[2].state == _RUNNING]
                heapq.heapify(self._heap)
                self._compact_at = max(_COMPACT_MIN, 2 * len(self._heap))
            heap = self._heap
            first = heap[0][0] if heap else None
            if limits.soft is not None and (limits.hard is None or limits.soft < limits.hard):
                heapq.heappush(heap, (w.started + limits.soft, next(self._seq), w, False))
            if w.hard_at is not None:
                heapq.heappush(heap, (w.hard_at, next(self._seq), w, True))
            if first is None or heap[0][0] < first:
                self._cond.notify()  # the watchdog sleeps until the earliest deadline: now sooner
        return w

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    heap = self._heap  # (replaced when swept)
                    # Entries of calls already finished are dropped as they come up.
                    while heap and heap[0][2].state != _RUNNING:
                        heapq.heappop(heap)
                    if heap and heap[0][0] <= time.monotonic():
                        break
                    self._cond.wait(heap[0][0] - time.monotonic() if heap else None)
                if self._stopped:
                    return
                _, _, w, hard = heapq.heappop(self._heap)
            if hard:
                if w._fire(TimeLimitExceeded, abandon=True):
                    log.error("%s ran past its time limit of %gs; giving it up", w.label, w.limits.hard)
                    threading.Thread(target=self._abandon, args=(w,), name="machinery-abandon", daemon=True).start()
            elif w._fire(SoftTimeLimitExceeded, abandon=False):
                log.warning("%s ran past its soft time limit of %gs", w.label, w.limits.soft)

    def _abandon(self, w: Watch) -> None:
        try:
            self._on_abandon(w)
        except Exception:
            log.exception("handling a task given up at its time limit failed")
