"""What a worker does with a message for a task it has not registered.

Another worker on the queue may have the task, so the message is given back, after a back-off
that grows (0.1 s, 0.2 s, 0.4 s... at most ``MAX_DELAY``) with jitter (x0.5 to x1.5), so workers
that lack it do not pass it between them in step. It is given up on (dead-lettered, its task
recorded as FAILURE) only after ``Config.unregistered_timeout`` seconds with no taker and more than
``Config.max_redeliveries`` deliveries. A message that sets Go Machinery's
``IgnoreWhenTaskNotRegistered`` is dropped instead (acknowledged, with a warning), as Go's worker
drops it. On SQLite a worker claims only messages for tasks it has (``Broker.claim_only``), so it
meets such a message only once it is older than ``unregistered_timeout``.

The flag is not part of a ``Signature``: a worker reads which signatures of a message set it
(``ignoring_uuids``: the message's and its callbacks', by UUID), and whatever it sends again from
that message (a retry, a callback, a chord callback) is written with the flag still set, in Go's
format by the Router and in this project's by ``with_ignore_flags``. A message given back
(``nack``) keeps its bytes, so keeps the flag.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Set
from dataclasses import dataclass

from machinery.brokers.base import Delivery
from machinery.config import Config

__all__ = [
    "FIRST_DELAY",
    "FLAG",
    "MAX_DELAY",
    "Decision",
    "UnregisteredPolicy",
    "ignored_by_sender",
    "ignoring_uuids",
    "with_ignore_flags",
]

#: Go Machinery's field: drop the message where its task is not registered.
FLAG = "IgnoreWhenTaskNotRegistered"
_FLAG_BYTES = FLAG.encode()
_CALLBACK_FIELDS = ("OnSuccess", "OnError")
_NONE: frozenset[str] = frozenset()

#: Seconds before a message for a task not registered here is first offered again.
FIRST_DELAY = 0.1
#: Longest back-off, in seconds, between offers of such a message.
MAX_DELAY = 30.0


def nominal_delay(delivery_count: int) -> float:
    """The back-off after delivery ``delivery_count`` (1-based), before jitter."""
    return min(FIRST_DELAY * 2.0 ** min(delivery_count - 1, 64), MAX_DELAY)


def waited(delivery_count: int) -> float:
    """The time a message delivered ``delivery_count`` times has been offered, by the back-offs."""
    return sum(nominal_delay(n) for n in range(1, delivery_count))


def ignored_by_sender(body: bytes) -> bool:
    """Whether the message asks to be dropped by a worker that lacks its task (Go Machinery's
    ``IgnoreWhenTaskNotRegistered``)."""
    if _FLAG_BYTES not in body:
        return False
    message = _object(body)
    return message is not None and message.get(FLAG) is True


def _object(body: bytes) -> dict[str, object] | None:
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return message if isinstance(message, dict) else None


def _nested(sig: dict[str, object]) -> list[dict[str, object]]:
    """The signatures nested in ``sig`` (callbacks, chord callback) that are JSON objects."""
    out: list[dict[str, object]] = []
    for field in _CALLBACK_FIELDS:
        callbacks = sig.get(field)
        if isinstance(callbacks, list):
            out.extend(cb for cb in callbacks if isinstance(cb, dict))
    chord = sig.get("ChordCallback")
    if isinstance(chord, dict):
        out.append(chord)
    return out


def ignoring_uuids(body: bytes) -> frozenset[str]:
    """The UUIDs of the signatures in message ``body`` (it and every nested callback and chord
    callback) that set ``IgnoreWhenTaskNotRegistered``; empty at once for a message without the field."""
    if _FLAG_BYTES not in body:
        return _NONE
    message = _object(body)
    if message is None:
        return _NONE
    found: set[str] = set()
    stack = [message]
    while stack:
        sig = stack.pop()
        uuid = sig.get("UUID")
        if sig.get(FLAG) is True and isinstance(uuid, str):
            found.add(uuid)
        stack.extend(_nested(sig))
    return frozenset(found)


def with_ignore_flags(body: bytes, uuids: Set[str]) -> bytes:
    """Message ``body`` (this project's JSON format) with ``IgnoreWhenTaskNotRegistered`` set on
    the signatures, nested ones too, whose UUIDs are in ``uuids``; ``body`` itself when none is."""
    if not uuids:
        return body
    message = _object(body)
    if message is None:
        return body
    changed = False
    stack = [message]
    while stack:
        sig = stack.pop()
        uuid = sig.get("UUID")
        if isinstance(uuid, str) and uuid in uuids:
            sig[FLAG] = True
            changed = True
        stack.extend(_nested(sig))
    if not changed:
        return body
    return json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Decision:
    """Give the message back after ``delay`` seconds; or, with ``give_up``, dead-letter it."""

    delay: float
    give_up: bool
    waited: float


class UnregisteredPolicy:
    """Decides, from a delivery's count and age, when a message for a missing task comes back."""

    def __init__(self, config: Config, rng: random.Random | None = None) -> None:
        self.timeout = config.unregistered_timeout
        self.min_deliveries = config.max_redeliveries
        self._rng = rng or random.Random()

    def decide(self, delivery: Delivery) -> Decision:
        count = delivery.delivery_count
        so_far = waited(count)
        if delivery.published_at > 0:
            so_far = max(so_far, time.time() - delivery.published_at)
        if count > self.min_deliveries and so_far >= self.timeout:
            return Decision(0.0, True, so_far)
        return Decision(nominal_delay(count) * self._rng.uniform(0.5, 1.5), False, so_far)
