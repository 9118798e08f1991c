"""Where a signature goes: the broker message for it (queue, body, delay, priority), held to the
configured limits and signed when signing keys are set."""

from __future__ import annotations

from datetime import UTC, datetime

from machinery._speedups import encode
from machinery.brokers.base import OutgoingMessage
from machinery.config import Config
from machinery.limits import check_fanout, check_size
from machinery.signature import Signature
from machinery.signing import Signer

__all__ = ["Router", "outgoing"]


def outgoing(sig: Signature, default_queue: str, delay: float = 0.0) -> OutgoingMessage:
    """The broker message for ``sig``: its queue (the routing key, else ``default_queue``), its
    encoded body, a delay (the later of ``delay`` and its ETA) and its priority. No limits, no
    signature: ``Router.message`` adds them."""
    if sig.eta is not None:
        delay = max((sig.eta - datetime.now(UTC)).total_seconds(), delay)
    return OutgoingMessage(sig.routing_key or default_queue, encode(sig), max(delay, 0.0), sig.priority)


class Router:
    """Builds the broker messages of one App or worker: ``outgoing`` plus ``max_fanout`` and
    ``max_message_bytes`` (``LimitExceeded`` before anything is sent) and the signature header."""

    __slots__ = ("default_queue", "max_fanout", "max_message_bytes", "signer")

    def __init__(self, config: Config) -> None:
        self.default_queue = config.default_queue
        self.max_fanout = config.max_fanout
        self.max_message_bytes = config.max_message_bytes
        self.signer = Signer(config.signing_keys) if config.signing_keys else None

    def message(self, sig: Signature, delay: float = 0.0) -> OutgoingMessage:
        check_fanout(sig, self.max_fanout)
        out = outgoing(sig, self.default_queue, delay)
        check_size(len(out.body), self.max_message_bytes, sig.name)
        signer = self.signer
        if signer is None:
            return out
        return OutgoingMessage(out.queue, out.body, out.delay, out.priority, signer.headers(out.body))
