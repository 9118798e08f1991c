"""Where a signature goes: the broker message for it (queue, body, delay, priority)."""

from __future__ import annotations

from datetime import UTC, datetime

from machinery._speedups import encode
from machinery.brokers.base import OutgoingMessage
from machinery.signature import Signature

__all__ = ["outgoing"]


def outgoing(sig: Signature, default_queue: str, delay: float = 0.0) -> OutgoingMessage:
    """The broker message for ``sig``: its queue (the routing key, else ``default_queue``), its
    encoded body, a delay (the later of ``delay`` and its ETA) and its priority."""
    if sig.eta is not None:
        delay = max((sig.eta - datetime.now(UTC)).total_seconds(), delay)
    return OutgoingMessage(sig.routing_key or default_queue, encode(sig), max(delay, 0.0), sig.priority)
