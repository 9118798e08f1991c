"""Where a signature goes: the broker message for it (queue, body, delay, priority).

A signature's ``routing_key`` names its queue; an empty one, or the configured ``binding_key``
(the AMQP routing key of the default queue, which is what Go Machinery writes there), means the
default queue. A message that goes back where it came from (a retry) is given its queue
explicitly, whatever its ``routing_key`` says.
"""

from __future__ import annotations

from datetime import datetime, timezone

from machinery._speedups import encode
from machinery.brokers.base import OutgoingMessage
from machinery.config import Config
from machinery.gowire import encode_go
from machinery.signature import Signature

__all__ = ["Router"]

_NO_HEADERS: dict[str, str] = {}


class Router:
    """Turns signatures into broker messages under one config: its default queue, binding key and
    wire format (``"go"``: Go Machinery v1's JSON with ``RoutingKey`` set as Go's broker sets it)."""

    __slots__ = ("_default_key", "binding_key", "default_queue", "go")

    def __init__(self, config: Config) -> None:
        self.default_queue = config.default_queue
        self.binding_key = config.binding_key
        self.go = config.wire_format == "go"
        # Go's rule for an empty routing key: the binding key on a direct exchange, else the queue.
        self._default_key = config.binding_key if config.exchange_type == "direct" else config.default_queue

    def queue_for(self, sig: Signature) -> str:
        """The queue ``sig`` is sent to: its routing key, or the default queue for none or the binding key."""
        key = sig.routing_key
        if not key or key == self.binding_key:
            return self.default_queue
        return key

    def message(self, sig: Signature, delay: float = 0.0, *, queue: str | None = None) -> OutgoingMessage:
        """The broker message for ``sig``: to ``queue`` (else ``queue_for(sig)``), its encoded body, a
        delay (the later of ``delay`` and its ETA) and its priority."""
        if sig.eta is not None:
            delay = max((sig.eta - datetime.now(timezone.utc)).total_seconds(), delay)
        if queue is None:
            queue = self.queue_for(sig)
        if not self.go:
            return OutgoingMessage(queue, encode(sig), max(delay, 0.0), sig.priority, _NO_HEADERS, sig.name)
        body = encode_go(sig, self._default_key if queue == self.default_queue else queue)
        return OutgoingMessage(queue, body, max(delay, 0.0), sig.priority, _NO_HEADERS, sig.name)
