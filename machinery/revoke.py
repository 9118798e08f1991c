"""Revoking tasks: ``app.revoke(uuid)`` records the UUID in the result store's control store
(``ControlStore``) with an expiry, and every worker's ``Revoker`` hook skips a revoked task in
``before_run``: its state becomes ``REVOKED``, neither its success nor its error callbacks are sent,
and if it belongs to a chord, the chord's callback is recorded as ``FAILURE`` saying which member was
revoked (so whoever waits on the chord learns it at once instead of waiting forever).

Workers read the whole set of revocations at most every ``REFRESH`` seconds (one query, on the task
thread that finds the copy stale; the others keep using the old copy meanwhile), so the hot path pays
a dictionary lookup per task, and a revocation reaches every worker within ``REFRESH`` seconds. It
lives in the store, not in worker memory, so it survives worker restarts; it expires after
``expires_in`` seconds (a week by default: longer than any delay you would revoke).
"""

from __future__ import annotations

import logging
import threading
import time

from machinery.backends.base import ResultBackend
from machinery.backends.control import ControlStore, control_store
from machinery.errors import MachineryError
from machinery.hooks import Hook, RunDecision, Skip, TaskCall
from machinery.states import TaskResult, TaskState

__all__ = ["DEFAULT_EXPIRY", "REFRESH", "Revoker", "revoke"]

log = logging.getLogger("machinery.revoke")

#: Seconds a worker trusts its copy of the revocations before reading them again.
REFRESH = 1.0
#: Seconds a revocation is kept unless ``expires_in`` says otherwise (a week).
DEFAULT_EXPIRY = 7 * 24 * 3600.0

#: States in which a revoked task has not started: its record becomes ``REVOKED`` at once.
_NOT_STARTED = frozenset({TaskState.PENDING, TaskState.RECEIVED, TaskState.RETRY})


def _control(backend: ResultBackend | None) -> ControlStore:
    control = control_store(backend)
    if control is None:
        raise MachineryError(
            "revoking needs a result backend that keeps revocations (sqlite://, redis://, memory://); "
            f"this one is {type(backend).__name__ if backend is not None else 'none'}"
        )
    return control


def revoke(backend: ResultBackend | None, task_uuid: str, reason: str = "revoked",
           expires_in: float = DEFAULT_EXPIRY) -> None:
    """Make sure the task ``task_uuid`` does not run: recorded for every worker (for
    ``expires_in`` seconds) and, if it has not started, its state set to ``REVOKED`` now. A task
    already running is not interrupted."""
    if not isinstance(task_uuid, str) or not task_uuid:
        raise ValueError(f"revoke needs a task UUID, got {task_uuid!r}")
    if expires_in <= 0:
        raise ValueError(f"expires_in must be > 0 seconds, got {expires_in!r}")
    _control(backend).revoke(task_uuid, reason, expires_in)
    assert backend is not None
    record = backend.get(task_uuid)
    if record is None or record.state in _NOT_STARTED:
        backend.set(TaskResult(task_uuid, TaskState.REVOKED, record.name if record else "", error=reason))


class Revoker(Hook):
    """Skips revoked tasks (``before_run``); ``App.worker()`` registers one when the result
    backend keeps revocations."""

    def __init__(self, backend: ResultBackend, *, refresh: float = REFRESH) -> None:
        self._control = _control(backend)
        self._backend = backend
        self._refresh = refresh
        self._revoked: dict[str, str] = {}
        self._stale_at = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Revoker {len(self._revoked)} revoked>"

    def _current(self) -> dict[str, str]:
        now = time.monotonic()
        # Until the first read, every thread waits for it; after that, one thread reads again
        # while the others use the copy it replaces.
        if now >= self._stale_at and self._lock.acquire(blocking=self._stale_at == 0.0):
            try:
                if time.monotonic() >= self._stale_at:
                    self._revoked = self._control.revocations()
                    self._stale_at = time.monotonic() + self._refresh
            except MachineryError as exc:
                log.warning("could not read revocations (%s); using the last ones read", exc)
                self._stale_at = time.monotonic() + self._refresh
            finally:
                self._lock.release()
        return self._revoked

    def before_run(self, call: TaskCall) -> RunDecision | None:
        reason = self._current().get(call.signature.uuid)
        if reason is None:
            return None
        sig = call.signature
        callback = sig.chord_callback
        if callback is not None:
            why = f"chord {sig.group_uuid} cannot complete: its member {sig.name}[{sig.uuid}] was revoked ({reason})"
            self._backend.set(TaskResult(callback.uuid, TaskState.FAILURE, callback.name, error=why))
        log.info("task %s[%s] is revoked (%s); not running it", sig.name, sig.uuid, reason)
        return Skip(reason)
