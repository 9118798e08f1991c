"""Where a signature goes: the broker message for it (queue, body, delay, priority), held to the
configured limits and signed when signing keys are set.

A signature's ``routing_key`` names its queue; an empty one, or the configured ``binding_key``
(the AMQP routing key of the default queue, which is what Go Machinery writes there), means the
default queue. A message that goes back where it came from (a retry) is given its queue
explicitly, whatever its ``routing_key`` says.

In Go's format each typed argument is named after the task's parameter at its position, from the
registry given (the sending app's registered functions); a task it does not know gets ``""``.
"""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime, timezone

from machinery._speedups import encode
from machinery.brokers.base import OutgoingMessage
from machinery.config import Config
from machinery.gowire import ArgNames, encode_go
from machinery.limits import check_message_fanout, check_size
from machinery.registry import Registry
from machinery.signature import Signature
from machinery.signing import Signer
from machinery.unregistered import with_ignore_flags

__all__ = ["Router"]

_NO_HEADERS: dict[str, str] = {}
_NONE: frozenset[str] = frozenset()


class Router:
    """Turns signatures into broker messages under one config: its default queue, binding key and
    wire format (``"go"``: Go Machinery v1's JSON with ``RoutingKey`` set as Go's broker sets it),
    ``max_fanout`` and ``max_message_bytes`` (``LimitExceeded`` before anything is sent) and, with
    ``signing_keys``, the signature header. In Go's format, arguments are named from ``registry``'s
    functions (none given: every ``Name`` is ``""``)."""

    __slots__ = ("_arg_names", "_default_key", "binding_key", "default_queue", "go", "max_fanout",
                 "max_message_bytes", "signer")

    def __init__(self, config: Config, registry: Registry | None = None) -> None:
        self.default_queue = config.default_queue
        self.binding_key = config.binding_key
        self.go = config.wire_format == "go"
        # Go's rule for an empty routing key: the binding key on a direct exchange, else the queue.
        self._default_key = config.binding_key if config.exchange_type == "direct" else config.default_queue
        self.max_fanout = config.max_fanout
        self.max_message_bytes = config.max_message_bytes
        self.signer = Signer(config.signing_keys) if config.signing_keys else None
        self._arg_names: ArgNames | None = registry.arg_names if registry is not None and self.go else None

    def queue_for(self, sig: Signature) -> str:
        """The queue ``sig`` is sent to: its routing key, or the default queue for none or the binding key."""
        key = sig.routing_key
        if not key or key == self.binding_key:
            return self.default_queue
        return key

    def message(
        self, sig: Signature, delay: float = 0.0, *, queue: str | None = None, ignoring: Set[str] = _NONE
    ) -> OutgoingMessage:
        """The broker message for ``sig``: to ``queue`` (else ``queue_for(sig)``), its encoded body, a
        delay (the later of ``delay`` and its ETA) and its priority; checked against the limits and
        signed. The signatures whose UUIDs are in ``ignoring`` (those of a received message that set
        it) are written with ``IgnoreWhenTaskNotRegistered``. Fan-out is checked on the encoded body
        (``check_message_fanout``: a small one is not walked)."""
        if sig.eta is not None:
            delay = max((sig.eta - datetime.now(timezone.utc)).total_seconds(), delay)
        if queue is None:
            queue = self.queue_for(sig)
        if not self.go:
            body = encode(sig)
            if ignoring:
                body = with_ignore_flags(body, ignoring)
        else:
            key = self._default_key if queue == self.default_queue else queue
            body = encode_go(sig, key, self._arg_names, ignoring)
        check_message_fanout(sig, len(body), self.max_fanout)
        check_size(len(body), self.max_message_bytes, sig.name)
        signer = self.signer
        headers = signer.headers(body) if signer is not None else _NO_HEADERS
        return OutgoingMessage(queue, body, max(delay, 0.0), sig.priority, headers, sig.name)
