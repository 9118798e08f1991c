"""The periodic scheduler (``machinery beat``, ``machinery worker --beat``): sends each entry's work
at its due times, exactly once however many schedulers run.

Each due run is a lease in the result store's control store, keyed by the entry's name and the due
time: a scheduler *claims* it, sends the work, then marks it *done* (remembered long enough that no
scheduler considers that due time again). Another scheduler that finds it held waits; if the holder
dies (even by SIGKILL) before marking it done, its lease runs out after ``lease`` seconds and the
next scheduler to look takes it over and sends it. So a run is sent once, unless a scheduler dies
after sending and before marking it done - then it is sent again by the one that takes over
(at-least-once, never lost).

Missed runs (all schedulers were down, or one was stalled): a scheduler that starts, or finds
several due times passed, sends only the latest one (if nobody did), not a burst; the ones before it
are skipped. An entry seen for the first time in a store does not run at start: it starts with its
next due time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone

from machinery.app import App
from machinery.backends.control import Claim, ControlStore, control_store
from machinery.errors import MachineryError
from machinery.periodic import Periodic, fresh

__all__ = ["LEASE", "PERIODIC_HEADER", "Beat"]

log = logging.getLogger("machinery.beat")

#: Seconds a scheduler holds a due run while sending it; a dead holder's run is taken over after it.
LEASE = 10.0
#: Header on the signatures a periodic run sends: ``<entry name>@<due time, ISO 8601 UTC>``.
PERIODIC_HEADER = "machinery-periodic"
#: How often (seconds) a scheduler looks again when nothing is due sooner, or a run is held.
TICK = 0.5
_FOREVER = 10 * 365 * 86400.0


def _keep(entry: Periodic) -> float:
    """How long a done run is remembered: far longer than any scheduler could lag."""
    return max(entry.schedule.every * 10, 3600.0) if entry.schedule.every else 7 * 86400.0


class Beat:
    """Sends ``entries`` of ``app`` at their due times until ``stop`` is set (``run``)."""

    def __init__(self, app: App, entries: Sequence[Periodic], *, lease: float = LEASE, tick: float = TICK) -> None:
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise ValueError(f"periodic entry names must be unique, got {names}")
        self.app = app
        self.entries = tuple(entries)
        self.lease = lease
        self.tick = tick
        self.owner = f"{socket.gethostname()}.{os.getpid()}.{id(self):x}"
        self.sent = 0
        """Runs this scheduler sent."""

    def _store(self) -> ControlStore:
        store = control_store(self.app.backend)
        if store is None:
            raise MachineryError("machinery beat needs a result backend that keeps leases (sqlite:// or redis://)")
        return store

    def _first_due(self, store: ControlStore, entry: Periodic, now: float) -> float:
        """The policy at start: the latest missed run if the entry ran here before, else the next."""
        known = f"periodic:{entry.name}:known"
        latest = entry.schedule.latest(now)
        if store.claim(known, "known", _FOREVER) is Claim.MINE:
            if latest is not None and store.claim(_key(entry, latest), self.owner, self.lease) is Claim.MINE:
                store.complete(_key(entry, latest), self.owner, _keep(entry))  # not run: it is new here
            store.complete(known, "known", _FOREVER)
            return next(entry.schedule.after(now))
        return latest if latest is not None else next(entry.schedule.after(now))

    def _due_after(self, entry: Periodic, due: float, now: float) -> float:
        following = next(entry.schedule.after(due))
        if following <= now:  # several passed (a stall): only the latest is run
            latest = entry.schedule.latest(now)
            if latest is not None and latest > following:
                log.warning("periodic %s: skipping the runs due from %s until %s (run once, not a burst)",
                            entry.name, _iso(following), _iso(latest))
                return latest
        return following

    def _send(self, store: ControlStore, entry: Periodic, due: float) -> bool:
        """Claim, send and complete the run of ``entry`` due at ``due``; True when it is settled
        (sent here or elsewhere), False when another scheduler holds it."""
        key = _key(entry, due)
        claim = store.claim(key, self.owner, self.lease)
        if claim is Claim.DONE:
            return True
        if claim is Claim.HELD:
            return False
        self.app.send_task(fresh(entry.work, {PERIODIC_HEADER: f"{entry.name}@{_iso(due)}"}))
        store.complete(key, self.owner, _keep(entry))
        self.sent += 1
        log.info("periodic %s: sent the run due at %s", entry.name, _iso(due))
        return True

    def run(self, stop: threading.Event) -> None:
        """Send due runs until ``stop`` is set. Errors of the broker or the store are logged and
        retried at the next look; nothing here raises once started."""
        store = self._store()
        now = time.time()
        due = {e.name: self._first_due(store, e, now) for e in self.entries}
        log.info("beat %s: %d periodic entries: %s", self.owner, len(self.entries),
                 ", ".join(f"{e.name} ({e.schedule}, next {_iso(due[e.name])})" for e in self.entries))
        while not stop.is_set():
            now = time.time()
            for entry in self.entries:
                try:
                    while due[entry.name] <= now and not stop.is_set():
                        if not self._send(store, entry, due[entry.name]):
                            break
                        due[entry.name] = self._due_after(entry, due[entry.name], now)
                except MachineryError as exc:
                    log.error("periodic %s: could not send the run due at %s (%s); trying again",
                              entry.name, _iso(due[entry.name]), exc)
            soonest = min(due.values(), default=now + self.tick)
            stop.wait(min(max(soonest - time.time(), 0.01), self.tick))

    def start(self) -> tuple[threading.Thread, threading.Event]:
        """Run in a background thread; set the returned event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="machinery-beat", daemon=True)
        thread.start()
        return thread, stop


def _key(entry: Periodic, due: float) -> str:
    return f"periodic:{entry.name}:{due:.3f}"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="milliseconds")
