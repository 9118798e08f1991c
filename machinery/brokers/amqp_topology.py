"""Names, routing keys, header names and delay buckets of the AMQP broker's RabbitMQ topology.

The rules, in one place:

- Tasks go through the configured exchange (``direct``, ``topic`` or ``fanout``). The default queue is
  bound with ``binding_key`` and a message for it is published with routing key ``binding_key``;
  any other destination queue is declared on first use and bound with its own name as key, and a
  message for it is published with that name as routing key.
- ``<queue>.dead`` sits beside each queue; dead letters reach it through the default exchange.
- Delays are held by RabbitMQ in TTL queues ``<exchange>.delay.<k>`` (one per power-of-two number of
  milliseconds ``2**k``, ``k`` below ``DELAY_BUCKETS``), fed by a headers exchange ``<exchange>.delay``
  on the ``machinery-delay-bucket`` header. An expired message dead-letters into the default exchange
  with the routing key it was published with, the name of its destination queue, so it returns to
  exactly that queue whatever the main exchange's type. The due time travels in the
  ``machinery-due`` header; a consumer that receives a message early delays it again for the rest.
"""

from __future__ import annotations

import math

__all__ = [
    "DELAY_BUCKETS",
    "DELIVERIES_HEADER",
    "DUE_HEADER",
    "BUCKET_HEADER",
    "INTERNAL_HEADERS",
    "bucket_for",
    "delay_exchange",
    "delay_queue",
]

#: Number of delay queues at most: bucket ``k`` holds messages for ``2**k`` ms (up to ~24.9 days).
DELAY_BUCKETS = 32
#: Header with the due time of a delayed message, milliseconds since the Unix epoch.
DUE_HEADER = "machinery-due"
#: Header that routes a delayed message to its bucket's queue (headers exchanges ignore ``x-`` keys).
BUCKET_HEADER = "machinery-delay-bucket"
#: Header with how many deliveries a message had before it was published again on ``nack``.
DELIVERIES_HEADER = "machinery-deliveries"
#: Headers used by this broker or RabbitMQ that are not passed to consumers.
INTERNAL_HEADERS = frozenset(
    {DUE_HEADER, BUCKET_HEADER, DELIVERIES_HEADER, "x-death", "x-delivery-count", "x-first-death-exchange",
     "x-first-death-queue", "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue",
     "x-last-death-reason"}
)


def delay_exchange(exchange: str) -> str:
    """The headers exchange that feeds the delay queues of ``exchange``."""
    return f"{exchange}.delay"


def delay_queue(exchange: str, bucket: int) -> str:
    """The TTL queue that holds messages for ``2**bucket`` milliseconds."""
    return f"{exchange}.delay.{bucket}"


def bucket_for(remaining_ms: float) -> int:
    """The largest bucket whose wait does not pass ``remaining_ms`` (at least bucket 0, 1 ms).

    A message waits in this bucket, comes back early by less than the bucket's own length, and is
    delayed again for the rest: at most about ``log2`` of its delay hops, never too early."""
    if remaining_ms < 2:
        return 0
    return min(DELAY_BUCKETS - 1, math.floor(math.log2(remaining_ms)))
