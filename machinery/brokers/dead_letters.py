"""Dead letters as the brokers keep them: what each one records, and the protocol of brokers that
can list, requeue and purge them.

A message is dead-lettered (``Broker.dead_letter``) with headers saying why, when and after how many
deliveries (``dead_letter_headers``). Brokers that implement ``DeadLetterStore`` read them back as
``DeadMessage`` values; requeueing strips those headers and puts the message back on its queue with
its delivery count reset.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from machinery.brokers.base import REASON_HEADER, Delivery

__all__ = [
    "DEAD_AT_HEADER",
    "DEAD_DELIVERIES_HEADER",
    "DEAD_HEADERS",
    "DEAD_ID_HEADER",
    "DeadLetterStore",
    "DeadMessage",
    "dead_letter_headers",
    "live_headers",
    "original_queue",
]

#: Header: when the message was dead-lettered (seconds since the epoch, as text).
DEAD_AT_HEADER = "x-machinery-dead-at"
#: Header: how many times the message had been delivered when it was dead-lettered.
DEAD_DELIVERIES_HEADER = "x-machinery-dead-deliveries"
#: Header: the dead letter's id where the broker has no id of its own for it (AMQP).
DEAD_ID_HEADER = "x-machinery-dead-id"
#: The headers a dead letter gains, dropped again when it is requeued.
DEAD_HEADERS = frozenset({REASON_HEADER, DEAD_AT_HEADER, DEAD_DELIVERIES_HEADER, DEAD_ID_HEADER})


def dead_letter_headers(delivery: Delivery, reason: str) -> dict[str, str]:
    """``delivery``'s headers plus why, when and after how many deliveries it was dead-lettered."""
    return {
        **delivery.headers,
        REASON_HEADER: reason,
        DEAD_AT_HEADER: f"{time.time():.3f}",
        DEAD_DELIVERIES_HEADER: str(delivery.delivery_count),
    }


def live_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` without those a dead letter gained (for requeueing it)."""
    return {k: v for k, v in headers.items() if k not in DEAD_HEADERS}


def original_queue(dead_queue: str) -> str:
    """The queue a ``<queue>.dead`` queue sits beside."""
    return dead_queue.removesuffix(".dead")


@dataclass(frozen=True, slots=True)
class DeadMessage:
    """One dead letter as the broker holds it."""

    id: str
    """The broker's id for it (unique in its dead-letter queue)."""
    queue: str
    """The queue it was dead-lettered from (it sits in ``<queue>.dead``)."""
    body: bytes
    reason: str
    dead_at: float | None
    """When it was dead-lettered (seconds since the epoch), None when not recorded."""
    delivery_count: int
    """Deliveries before it was dead-lettered (0 when not recorded)."""
    priority: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_headers(
        cls, id: str, queue: str, body: bytes, headers: Mapping[str, str], *, priority: int = 0,
        delivery_count: int | None = None,
    ) -> DeadMessage:
        """A dead letter whose reason, time and delivery count are read from its headers."""
        try:
            dead_at: float | None = float(headers[DEAD_AT_HEADER])
        except (KeyError, ValueError):
            dead_at = None
        if delivery_count is None:
            try:
                delivery_count = int(headers.get(DEAD_DELIVERIES_HEADER, "0"))
            except ValueError:
                delivery_count = 0
        return cls(id, queue, body, headers.get(REASON_HEADER, ""), dead_at, delivery_count, priority, headers)


@runtime_checkable
class DeadLetterStore(Protocol):
    """A broker whose dead letters can be listed, requeued and purged. ``queue`` is always the
    queue they were dead-lettered from, not its ``.dead`` queue."""

    def dead_letters(self, queue: str, limit: int | None = None) -> list[DeadMessage]:
        """The dead letters of ``queue``, oldest first (at most ``limit``)."""
        ...

    def requeue_dead(self, queue: str, ids: Sequence[str] | None = None) -> list[str]:
        """Put the dead letters ``ids`` (all when None) back on ``queue``; returns the ids requeued."""
        ...

    def purge_dead(self, queue: str) -> int:
        """Delete every dead letter of ``queue``; returns how many."""
        ...
