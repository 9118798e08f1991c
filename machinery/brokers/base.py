"""The Broker protocol: what every broker offers. Brokers move bytes and know nothing of tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from machinery.errors import BrokerError

__all__ = [
    "Broker",
    "Delivery",
    "OutgoingMessage",
    "PUBLISHED",
    "PendingPublish",
    "QueueDepth",
    "REASON_HEADER",
    "dead_letter_queue",
]

#: Header that carries why a message was dead-lettered.
REASON_HEADER = "x-machinery-reason"

_NO_HEADERS: Mapping[str, str] = {}


def dead_letter_queue(queue: str) -> str:
    """The name of the dead-letter queue beside ``queue``."""
    return f"{queue}.dead"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to publish: its queue, body, and when and how urgently it should run."""

    queue: str
    body: bytes
    delay: float = 0.0
    """Seconds from now before any consumer may receive it (held by the broker, not in memory)."""
    priority: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    task: str = ""
    """The name of the task it carries, for brokers that can hand a consumer only the tasks it has
    (``Broker.claim_only``); "" when unknown."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message handed to a consumer. It must be settled exactly once: ``ack``, ``nack`` or
    ``dead_letter``. Until then the broker holds it for this consumer (a lease or an unacked
    AMQP delivery); a consumer that dies without settling it gets it delivered again elsewhere."""

    queue: str
    body: bytes
    tag: int
    """The broker's receipt for this delivery (row id, AMQP delivery tag...)."""
    delivery_count: int = 1
    """How many times this message has been delivered, this time included (1 = first time).
    Brokers that cannot count exactly give a lower bound (2 for a redelivered AMQP message)."""
    priority: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    published_at: float = 0.0
    """When it was first published (``time.time()``), where the broker keeps it (SQLite); else 0."""


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """How many messages a queue holds, by where they are."""

    queue: str
    ready: int
    """Deliverable now."""
    delayed: int
    """Waiting for their delay to pass."""
    in_flight: int
    """Delivered and not yet settled (-1 when the broker cannot tell)."""
    dead: int
    """In the dead-letter queue beside this queue."""


class PendingPublish(Protocol):
    """Messages being published: ``wait`` returns once the broker accepted every one of them, or
    raises ``BrokerError`` (then some may have been stored: at-least-once).

    ``when_settled(then)`` asks instead for ``then(accepted)`` to be called, once, as soon as the
    broker answered for all of them: ``True`` when it accepted every one, ``False`` when it did not
    or the answer was lost with the connection (call ``wait`` then: it publishes again or raises).
    ``then`` may run at once on the calling thread or later on a broker thread, so it must be quick
    and must not block."""

    def wait(self) -> None: ...

    def when_settled(self, then: Callable[[bool], None]) -> None: ...


class _Published:
    """A publish already accepted."""

    __slots__ = ()

    def wait(self) -> None:
        return None

    def when_settled(self, then: Callable[[bool], None]) -> None:
        then(True)


#: The ``PendingPublish`` of messages the broker has already accepted.
PUBLISHED: PendingPublish = _Published()


@runtime_checkable
class Broker(Protocol):
    """Moves message bytes between producers and consumers with at-least-once delivery.

    Thread safety: ``publish``, ``publish_many``, ``ack``, ``ack_many``, ``nack``, ``dead_letter``, ``extend``,
    ``depth`` and ``wake`` may be called from any thread; ``fetch`` from one thread at a time.
    Failures to reach the broker after bounded retries raise ``BrokerError``.
    """

    def declare(self, queues: Sequence[str]) -> None:
        """Make sure ``queues`` (and what they need beside them: dead-letter, delay) exist."""
        ...

    def publish(
        self,
        queue: str,
        body: bytes,
        *,
        delay: float = 0.0,
        priority: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Store one message durably; returns only once the broker has accepted it. (This default,
        inherited by the brokers that subclass ``Broker``, publishes it with ``publish_many``.)"""
        self.publish_many([OutgoingMessage(queue, body, delay, priority, headers or _NO_HEADERS)])

    def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Store several messages, pipelined; returns once all were accepted, or raises
        ``BrokerError`` (then some may have been stored: at-least-once)."""
        ...

    def publish_begin(self, messages: Sequence[OutgoingMessage]) -> PendingPublish:
        """Start publishing ``messages`` and return without waiting for the broker to accept them
        where it can (AMQP: the frames are sent, the confirms are awaited by ``wait``). This default,
        inherited by the brokers that subclass ``Broker``, publishes them now with ``publish_many``."""
        self.publish_many(messages)
        return PUBLISHED

    def claim_only(self, task_names: Iterable[str], *, unclaimed_after: float) -> None:
        """From now on, hand this broker's consumers only messages for ``task_names`` (and those
        for other tasks once ``unclaimed_after`` seconds old, so they can be given up on). Brokers
        that cannot choose by task (AMQP, in-memory) ignore it; this default does."""
        return None

    def on_arrival(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` (quick, non-blocking, from a broker thread) whenever messages arrive
        while no ``fetch`` waits for them, so that a consumer need not keep a fetch waiting at all
        times. False when this broker cannot tell (this default): keep a fetch waiting."""
        return False

    def pending(self, queue: str, limit: int) -> list[bytes]:
        """Up to ``limit`` message bodies ready in ``queue``, in delivery order, without consuming
        them. Brokers that cannot list without consuming (AMQP) raise ``BrokerError``: this default."""
        raise BrokerError(f"{type(self).__name__} cannot list messages without consuming them")

    def delayed(self, limit: int) -> list[tuple[str, float, bytes]]:
        """Up to ``limit`` delayed messages of every queue, soonest first: (queue, due time as
        ``time.time()``, body). Raises ``BrokerError`` where the broker cannot list (this default)."""
        raise BrokerError(f"{type(self).__name__} cannot list messages without consuming them")

    def fetch(self, queues: Sequence[str], max_messages: int, timeout: float) -> list[Delivery]:
        """Up to ``max_messages`` deliverable messages from ``queues``, highest priority first, then
        oldest first. Waits up to ``timeout`` seconds for the first one; returns [] if none came
        (or ``wake`` was called)."""
        ...

    def ack(self, delivery: Delivery) -> None:
        """The message was handled: remove it for good."""
        ...

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """``ack`` each of ``deliveries``, in one round trip or transaction where the broker can."""
        ...

    def nack(self, delivery: Delivery, *, delay: float = 0.0) -> None:
        """Give the message back to its queue, deliverable again after ``delay`` seconds."""
        ...

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the message to ``<queue>.dead`` with ``reason`` in its ``REASON_HEADER``."""
        ...

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Renew the hold on deliveries still being worked on (a no-op where holds never expire)."""
        ...

    def depth(self, queue: str) -> QueueDepth:
        """How many messages ``queue`` holds, by where they are."""
        ...

    def wake(self) -> None:
        """Make a ``fetch`` blocked in another thread return early (used at shutdown)."""
        ...

    def close(self) -> None:
        """Release connections and files. Unsettled deliveries go back to their queue (at once or
        when their hold expires)."""
        ...
