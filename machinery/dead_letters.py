"""Dead letters as typed records: what each one was (task name and UUID, when it can be decoded),
why and when it was dead-lettered, after how many deliveries; and requeueing and purging them.

Every function takes the broker and the queue the messages were dead-lettered from; a broker that
cannot list its dead letters (one that does not implement ``DeadLetterStore``) raises
``BrokerError`` saying so. ``App.dead_letters``, ``App.requeue_dead`` and ``App.purge_dead`` call
these with the App's broker, and ``machinery dead`` calls those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from machinery._speedups import decode
from machinery.backends.base import ResultBackend
from machinery.brokers.base import Broker
from machinery.brokers.dead_letters import DeadLetterStore, DeadMessage
from machinery.errors import BrokerError, DecodeError
from machinery.signature import Signature

__all__ = ["DeadLetter", "list_dead_letters", "purge_dead_letters", "requeue_dead_letters"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter: ``id`` names it to ``requeue``; ``signature`` is None when its body could
    not be decoded (then ``task`` is ``""``, and ``reason`` says why)."""

    id: str
    queue: str
    """The queue it was dead-lettered from (it sits in ``<queue>.dead``)."""
    task: str
    task_uuid: str
    reason: str
    dead_at: datetime | None
    """When it was dead-lettered (UTC), None when the broker did not record it."""
    delivery_count: int
    """How many times it had been delivered when it was dead-lettered (0: not recorded)."""
    signature: Signature | None
    body: bytes = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


def _record(message: DeadMessage) -> DeadLetter:
    try:
        sig: Signature | None = decode(message.body)
    except DecodeError:
        sig = None
    when = None if message.dead_at is None else datetime.fromtimestamp(message.dead_at, timezone.utc)
    return DeadLetter(
        id=message.id, queue=message.queue, task="" if sig is None else sig.name,
        task_uuid="" if sig is None else sig.uuid, reason=message.reason, dead_at=when,
        delivery_count=message.delivery_count, signature=sig, body=message.body, headers=message.headers,
    )


def _store(broker: Broker) -> DeadLetterStore:
    if not isinstance(broker, DeadLetterStore):
        raise BrokerError(f"{type(broker).__name__} cannot list, requeue or purge dead letters")
    return broker


def list_dead_letters(broker: Broker, queue: str, limit: int | None = None) -> list[DeadLetter]:
    """The dead letters of ``queue``, oldest first (at most ``limit``)."""
    return [_record(m) for m in _store(broker).dead_letters(queue, limit)]


def requeue_dead_letters(
    broker: Broker, queue: str, ids: Sequence[str] | None = None, backend: ResultBackend | None = None
) -> list[str]:
    """Put the dead letters ``ids`` (every one when None) back on ``queue``, their delivery counts
    reset; returns the ids requeued (ids not found are left out).

    With ``backend``, the stored state of each requeued task (the ``FAILURE`` recorded when it was
    dead-lettered) is forgotten first, so that its result handle waits for the new run instead of
    reporting the old failure."""
    if ids is not None and not ids:
        return []
    store = _store(broker)
    if backend is not None:
        for message in store.dead_letters(queue):
            if ids is None or message.id in ids:
                record = _record(message)
                if record.task_uuid:
                    backend.forget(record.task_uuid)
    return store.requeue_dead(queue, None if ids is None else list(ids))


def purge_dead_letters(broker: Broker, queue: str) -> int:
    """Delete every dead letter of ``queue``; returns how many."""
    return _store(broker).purge_dead(queue)
