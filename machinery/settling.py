"""The worker's settler: what follows a task's run, for every task in this order: its result is
stored, its follow-up messages are published and accepted by the broker, and only then is its
delivery acknowledged. A crash at any point loses nothing: an unacknowledged delivery runs again.

The steps are batched. The results of finished tasks are written in one round trip
(``ResultBackend.set_many``: one Redis command, one SQLite transaction); their follow-ups are then
published together (``Broker.publish_begin``: on AMQP the frames leave at once and the confirms are
awaited here, not on a task thread); the deliveries whose follow-ups were accepted are acknowledged
together (``Broker.ack_many``). A task that finishes alone (no other task running or waiting) while
nothing is being written stores its result and sends its follow-ups at once, on its own thread, so
a lone task (a chain's step) waits for no batch; the others join the next batch, which the settler
thread takes as soon as the current one is written (so batches grow with the load, and no write
waits for a timer). Deliveries that store and publish nothing are acknowledged as before: as soon
as ``ACK_BATCH`` gathered or the task threads ran out of work, else ``ACK_DELAY`` after the first.

When the result store cannot be reached, finished results are held (not re-run), the worker pauses
(``paused``: no new task starts, nothing more is fetched) and the write is tried again with a
back-off from ``STORE_RETRY_FIRST`` to ``STORE_RETRY_MAX`` seconds; nothing is acknowledged without
its result. Once the store answers, the held results are written, followed up and acknowledged, and
the worker resumes. A worker asked to stop during an outage keeps trying for ``STOP_GRACE`` seconds,
then gives the held deliveries back (they run again).

One file: when the broker and the result store are the same SQLite file (the default), a batch's
results, its follow-up messages, the record that they were sent and its acks are written in one
transaction: all of it or none of it is stored, in one commit.

Redelivered tasks: after a batch's follow-ups were accepted, the store records that they were sent
(``mark_follow_ups_sent``) before the ack, so a task delivered again after a crash between the two
is acknowledged without running or publishing again (see ``Executor.process``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence

from machinery.backends.base import ResultBackend
from machinery.backends.sqlite import SQLiteBackend
from machinery.brokers.base import Broker, Delivery, PendingPublish
from machinery.brokers.sqlite import SQLiteBroker
from machinery.errors import BrokerError, ResultBackendError
from machinery.outcomes import Outcome

__all__ = ["ACK_BATCH", "ACK_DELAY", "STOP_GRACE", "STORE_RETRY_FIRST", "STORE_RETRY_MAX", "Settler"]

log = logging.getLogger("machinery.worker")

#: Most finished deliveries the settler gathers before acknowledging them together.
ACK_BATCH = 32
#: Longest the settler waits (seconds) for more finished deliveries while task threads are busy.
ACK_DELAY = 0.002
#: First pause (seconds) before writing again to a result store that failed; it doubles each time.
STORE_RETRY_FIRST = 0.05
#: Longest pause (seconds) between attempts to write to a result store that keeps failing.
STORE_RETRY_MAX = 2.0
#: Seconds a stopping worker keeps trying to store held results before giving their deliveries back.
STOP_GRACE = 10.0
#: Seconds before a delivery whose outcome could not be stored or published runs again.
GIVE_BACK_DELAY = 1.0


def joint_sqlite(broker: Broker, backend: ResultBackend | None) -> Callable[[Sequence[Outcome]], None] | None:
    """When ``broker`` and ``backend`` are the same SQLite file: a function that stores outcomes'
    results, publishes their follow-ups, records that they were sent and acks their deliveries in
    one transaction (raising as the pool does when that fails). Else None."""
    if not (isinstance(broker, SQLiteBroker) and isinstance(backend, SQLiteBackend)):
        return None
    if not backend.shares_file(broker.options.path):
        return None

    def settle(outcomes: Sequence[Outcome]) -> None:
        records = [r for o in outcomes for r in o.records]
        sent = [o.task_uuid for o in outcomes if o.follow_ups]
        messages = [m for o in outcomes for m in o.follow_ups]
        broker.transaction([backend.store_part(records, sent),
                            broker.settle_part([o.delivery for o in outcomes], messages)])

    return settle


class Settler:
    """Stores, publishes and acknowledges the outcomes handed to ``add`` (from task threads) on
    its own thread, in batches. ``release(deliveries)`` is called once deliveries are settled
    (acked or given back); ``on_pause(paused)`` when the worker should pause or resume."""

    def __init__(
        self,
        broker: Broker,
        backend: ResultBackend | None,
        *,
        ack_batch: int = ACK_BATCH,
        release: Callable[[Sequence[Delivery]], None],
        on_pause: Callable[[bool], None],
        stopping: threading.Event,
        stop_grace: float = STOP_GRACE,
        lock: threading.Lock | None = None,
    ) -> None:
        self.broker = broker
        self.backend = backend
        self.ack_batch = max(1, ack_batch)
        self._release = release
        self._on_pause = on_pause
        self._stopping = stopping
        self._stop_grace = stop_grace
        self._cond = threading.Condition(lock or threading.Lock())
        """Guards what follows; a worker may share its own lock (see ``owe_locked``)."""
        self._to_write: list[Outcome] = []
        """Finished, result not stored yet (waiting for the settler thread)."""
        self._to_ack: list[Outcome] = []
        """Stored, follow-ups sent (maybe not yet accepted): waiting for the ack."""
        self._writers = 0
        self._flush = False
        self._done = False
        self._in_flight = 0
        """Deliveries whose follow-ups' acceptance will ack them from whichever thread learns it."""
        self._finish_by = 0.0
        self.paused = False
        """True while the result store is unreachable: start no task, fetch nothing."""
        self._joint = joint_sqlite(broker, backend)
        """Results, follow-ups and acks in one transaction (broker and store in one SQLite file)."""
        self._ack_on_accept = backend is None
        """Nothing to record between a follow-up's acceptance and the ack (no result store): the
        ack follows the broker's answer directly (``_ack_when_answered``), on no thread of ours."""
        self._thread = threading.Thread(target=self._loop, name="machinery-settler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> None:
        """Settle everything handed over so far, then end the settler thread (call once no task
        thread will ``add`` again)."""
        with self._cond:
            self._done = True
            self._finish_by = time.monotonic() + self._stop_grace
            self._cond.notify()
        self._thread.join()

    def flush(self) -> None:
        """The task threads ran out of work: acknowledge what is owed now, without waiting."""
        if self._to_ack and not self._flush:
            with self._cond:
                self.flush_locked()

    def flush_locked(self) -> None:
        """``flush`` for a caller holding the lock given to the settler."""
        if self._to_ack and not self._flush:
            self._flush = True
            self._cond.notify()

    def owe_locked(self, outcome: Outcome) -> bool:
        """For a caller holding the lock given to the settler: take over an outcome that has nothing
        to store or send (True: it will be acked in a batch); False: call ``add`` instead."""
        if outcome.records or outcome.follow_ups:
            return False
        owed = self._to_ack
        owed.append(outcome)
        if len(owed) == 1 or len(owed) >= self.ack_batch:
            self._cond.notify()
        return True

    def settle_now(self, outcomes: Sequence[Outcome]) -> None:
        """Store, publish and ack ``outcomes`` on this thread, as the settler thread does a batch."""
        if self._joint is not None:
            self._store(list(outcomes))
            return
        done = self._publish_stored(self._store(list(outcomes)))
        if done:
            self._settle(done)

    # -- from task threads --------------------------------------------------------------------

    def add(self, outcome: Outcome, *, alone: bool = False) -> None:
        """Take over a processed delivery: store, publish and ack it. ``alone`` (no other task is
        running or waiting to run): its result is written at once on this thread when no write is
        under way; otherwise it joins the settler's next batch."""
        cond = self._cond
        if not outcome.records and not outcome.follow_ups:
            with cond:
                self.owe_locked(outcome)
            return
        with cond:
            if not alone or self._writers or self._to_write or self.paused:
                self._to_write.append(outcome)
                if len(self._to_write) == 1:
                    cond.notify()
                return
            self._writers += 1
        try:
            stored = self._write_once([outcome])
        finally:
            with cond:
                self._writers -= 1
        if stored is None or (stored and self._joint is not None):
            return
        if not stored:  # the store failed: the settler thread holds it and tries again
            with cond:
                self._to_write.append(outcome)
                cond.notify()
            return
        if outcome.follow_ups and not self._begin_publish([outcome]):
            return
        if self._ack_on_accept and outcome.publishing is not None:
            self._ack_when_answered([outcome], outcome.publishing)
            return
        with cond:
            self._to_ack.append(outcome)
            cond.notify()

    # -- the settler thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._to_write and not self._to_ack:
                    if self._done and self._all_answered():
                        return
                    cond.wait(0.1 if self._done else None)
                if not self._to_write and not any(o.publishing is not None for o in self._to_ack):
                    deadline = time.monotonic() + ACK_DELAY
                    while (len(self._to_ack) < self.ack_batch and not self._flush and not self._done
                           and not self._to_write):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        cond.wait(left)
                writes, self._to_write = self._to_write, []
                acks, self._to_ack = self._to_ack, []
                self._flush = False
                if writes:
                    self._writers += 1
            if writes and self._joint is not None:
                try:
                    self._store(writes + acks)
                finally:
                    with cond:
                        self._writers -= 1
                continue
            if writes:
                try:
                    stored = self._store(writes)
                finally:
                    with cond:
                        self._writers -= 1
                published = self._publish_stored(stored)
                if self._ack_on_accept:
                    published = self._ack_when_accepted(published)
                acks.extend(published)
            if acks:
                self._settle(acks)

    def _all_answered(self) -> bool:
        """(Finishing, holding the lock) No delivery waits for its follow-ups' acceptance any more,
        or the stop grace ran out (those come back when the connection closes)."""
        if not self._in_flight:
            return True
        if time.monotonic() < self._finish_by:
            return False
        log.warning("stopping before the broker accepted the follow-ups of %d deliveries; they will run again",
                    self._in_flight)
        return True

    def _ack_when_accepted(self, outcomes: list[Outcome]) -> list[Outcome]:
        """``_ack_when_answered`` for the outcomes of one ``_publish_stored`` whose follow-ups are
        being published (one publish for all of them); returns the other outcomes."""
        published = [o for o in outcomes if o.publishing is not None]
        if not published:
            return outcomes
        pending = published[0].publishing
        assert pending is not None and all(o.publishing is pending for o in published)
        self._ack_when_answered(published, pending)
        return [o for o in outcomes if o.publishing is None]

    def _ack_when_answered(self, outcomes: list[Outcome], pending: PendingPublish) -> None:
        """Have ``outcomes`` acked as soon as the broker accepted their follow-ups (``pending``),
        by whichever thread learns it (AMQP: the I/O thread reading the confirms), so no settler
        wakes up for them; if they are not accepted they come back to the settler thread, whose
        ``wait`` publishes them again or gives them back."""
        with self._cond:
            self._in_flight += len(outcomes)
        pending.when_settled(functools.partial(self._answered, outcomes))

    def _answered(self, outcomes: list[Outcome], accepted: bool) -> None:
        """(Any thread; must not block) The broker answered for the outcomes' follow-ups."""
        if accepted:
            self._ack([o.delivery for o in outcomes])
        with self._cond:
            self._in_flight -= len(outcomes)
            if not accepted:
                self._to_ack.extend(outcomes)
                self._cond.notify()
            elif self._done and not self._in_flight:
                self._cond.notify()

    def _write_once(self, outcomes: Sequence[Outcome]) -> bool | None:
        """One attempt to store the outcomes' records (with a joint transaction: and to publish
        their follow-ups and ack them). True: stored; False: the store failed (hold them and try
        again); None: they cannot be stored and were given back."""
        if self._joint is not None:
            try:
                self._joint(outcomes)
            except (ResultBackendError, BrokerError):
                return False
            except Exception:
                log.exception("settling %d deliveries failed; their tasks will run again", len(outcomes))
                self._give_back(outcomes)
                return None
            self._after_joint(outcomes)
            return True
        backend = self.backend
        records = [r for o in outcomes for r in o.records]
        if backend is None or not records:
            return True
        try:
            backend.set_many(records)
        except ResultBackendError:
            return False
        except Exception:
            log.exception("storing %d results failed; their tasks will run again", len(records))
            self._give_back(outcomes)
            return None
        return True

    def _store(self, writes: list[Outcome]) -> list[Outcome]:
        """Store the outcomes' records, holding them with a back-off while the store fails (the
        worker paused meanwhile); the outcomes stored (none when they were given back)."""
        pause = STORE_RETRY_FIRST
        failing_since = 0.0
        give_up_at = 0.0
        try:
            while True:
                try:
                    stored = self._write_once(writes)
                    if stored is None:
                        return []
                    if stored:
                        if failing_since:
                            log.warning("the result store is back after %.1f s: %d held results stored; resuming",
                                        time.monotonic() - failing_since, len(writes))
                        return writes
                    if not failing_since:
                        failing_since = time.monotonic()
                        self._set_paused(True)
                        log.warning("the result store cannot be reached: holding %d finished results (their "
                                    "tasks are not run again), pausing consumption and retrying", len(writes))
                except ResultBackendError:  # from a backend without set_many's error mapping
                    pass
                if self._stopping.is_set():
                    now = time.monotonic()
                    give_up_at = give_up_at or now + self._stop_grace
                    if now >= give_up_at:
                        log.error("stopping with the result store still unreachable: giving back %d deliveries "
                                  "(their tasks will run again)", len(writes))
                        self._give_back(writes)
                        return []
                time.sleep(pause)
                pause = min(pause * 2, STORE_RETRY_MAX)
                with self._cond:  # hold what finished meanwhile together with these
                    writes.extend(self._to_write)
                    self._to_write.clear()
        finally:
            if failing_since:
                self._set_paused(False)

    def _publish_stored(self, stored: list[Outcome]) -> list[Outcome]:
        """Begin publishing the follow-ups of stored outcomes (one batch); those not given back."""
        with_follow_ups = [o for o in stored if o.follow_ups]
        done = [o for o in stored if not o.follow_ups]
        if with_follow_ups and self._begin_publish(with_follow_ups):
            done.extend(with_follow_ups)
        return done

    def _after_joint(self, outcomes: Sequence[Outcome]) -> None:
        """Settled in one transaction: forget finished chords' bookkeeping, stop holding them."""
        backend = self.backend
        for o in outcomes:
            if o.chord_group and backend is not None:
                try:
                    backend.group_done(o.chord_group)
                except Exception:
                    log.exception("could not forget the bookkeeping of chord group %s", o.chord_group)
        self._release([o.delivery for o in outcomes])

    def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        self._on_pause(paused)

    def _begin_publish(self, outcomes: Sequence[Outcome]) -> bool:
        """Start publishing every follow-up of ``outcomes`` (one batch); False (and the outcomes
        given back) when that failed."""
        messages = [m for o in outcomes for m in o.follow_ups]
        try:
            pending: PendingPublish = self.broker.publish_begin(messages)
        except Exception:
            log.exception("publishing %d follow-up messages failed; their tasks will run again", len(messages))
            self._give_back(outcomes)
            return False
        for o in outcomes:
            o.publishing = pending
        return True

    def _settle(self, outcomes: list[Outcome]) -> None:
        """Wait until the outcomes' follow-ups were accepted, record that they were sent, forget
        finished chords' bookkeeping, then ack together the deliveries whose follow-ups made it."""
        accepted: dict[int, bool] = {}
        ok: list[Outcome] = []
        failed: list[Outcome] = []
        for o in outcomes:
            pending = o.publishing
            if pending is None:
                ok.append(o)
                continue
            key = id(pending)
            if key not in accepted:
                try:
                    pending.wait()
                    accepted[key] = True
                except Exception:
                    log.exception("follow-up messages were not accepted; their tasks will run again")
                    accepted[key] = False
            (ok if accepted[key] else failed).append(o)
        if failed:
            self._give_back(failed)
        backend = self.backend
        if backend is not None:
            sent = [o.task_uuid for o in ok if o.follow_ups]
            if sent:
                try:
                    backend.mark_follow_ups_sent(sent)
                except Exception as exc:
                    log.warning("could not record that %d tasks' follow-ups were sent (%s); a redelivery of "
                                "one of them would send them again", len(sent), exc)
            for o in ok:
                if o.chord_group:
                    try:
                        backend.group_done(o.chord_group)
                    except Exception:
                        log.exception("could not forget the bookkeeping of chord group %s", o.chord_group)
        if ok:
            self._ack([o.delivery for o in ok])

    def _ack(self, deliveries: list[Delivery]) -> None:
        """Acknowledge ``deliveries`` together and stop holding them."""
        try:
            self.broker.ack_many(deliveries)
        except Exception:
            log.exception("acknowledging %d deliveries failed; they come back when their leases end", len(deliveries))
        self._release(deliveries)

    def _give_back(self, outcomes: Sequence[Outcome]) -> None:
        broker = self.broker
        for o in outcomes:
            try:
                broker.nack(o.delivery, delay=GIVE_BACK_DELAY)
            except Exception:
                log.exception("could not give back a delivery from %s; it comes back when its lease ends",
                              o.delivery.queue)
        self._release([o.delivery for o in outcomes])
