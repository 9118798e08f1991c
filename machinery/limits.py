"""Bounds on what one message may be: its size and how many messages running it may create.

A message with 100,000 ``OnSuccess`` callbacks makes 100,000 publishes on one worker thread; a
message of a gigabyte is read whole into memory. ``max_message_bytes`` and ``max_fanout`` bound
both: a producer is refused (``LimitExceeded``) before anything is sent, and a worker dead-letters a
message past them with the reason, without running it.

The fan-out of a message is what running it may create: its ``on_success`` and ``on_error``
callbacks plus its chord callback. Every signature nested in a message becomes a message in its
turn, so each is held to the bound; a group or chord sent at once may have at most ``max_fanout``
members.
"""

from __future__ import annotations

from machinery.errors import LimitExceeded
from machinery.signature import Signature

__all__ = [
    "DEFAULT_MAX_FANOUT", "DEFAULT_MAX_MESSAGE_BYTES", "check_fanout", "check_members", "check_message_fanout",
    "check_size", "fanout", "fanout_possible",
]

#: Default ``max_message_bytes``: 16 MiB (RabbitMQ refuses more than 128 MiB by default).
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Default ``max_fanout``.
DEFAULT_MAX_FANOUT = 10_000


def fanout(sig: Signature) -> int:
    """How many messages running ``sig`` itself may create (callbacks + chord callback)."""
    return len(sig.on_success) + len(sig.on_error) + (sig.chord_callback is not None)


def check_fanout(sig: Signature, max_fanout: int) -> None:
    """``LimitExceeded`` unless ``sig`` and every signature nested in it stay within ``max_fanout``."""
    if not sig.on_success and not sig.on_error and sig.chord_callback is None:
        return
    for s in sig.walk():
        n = fanout(s)
        if n > max_fanout:
            raise LimitExceeded(
                f"task {s.name}[{s.uuid}] would create {n} messages (callbacks + chord callback), "
                f"more than max_fanout={max_fanout}"
            )


def fanout_possible(body_size: int, max_fanout: int) -> bool:
    """Whether a message of ``body_size`` bytes can hold a signature past ``max_fanout`` at all: in
    JSON each callback takes at least three bytes (``{}`` and a comma), so a body under twice
    ``max_fanout`` bytes cannot, and its signatures need not be walked."""
    return body_size >= 2 * max_fanout


def check_message_fanout(sig: Signature, body_size: int, max_fanout: int) -> None:
    """``check_fanout`` for ``sig`` encoded in ``body_size`` bytes; a body too small to hold a
    signature past ``max_fanout`` (``fanout_possible``) is not walked."""
    if fanout_possible(body_size, max_fanout):
        check_fanout(sig, max_fanout)


def check_members(count: int, max_fanout: int, what: str = "group") -> None:
    """``LimitExceeded`` when a group or chord of ``count`` members passes ``max_fanout``."""
    if count > max_fanout:
        raise LimitExceeded(f"a {what} of {count} members is more than max_fanout={max_fanout}")


def check_size(size: int, max_message_bytes: int, name: str = "") -> None:
    """``LimitExceeded`` when a message of ``size`` bytes passes ``max_message_bytes``."""
    if size > max_message_bytes:
        of = f" for task {name}" if name else ""
        raise LimitExceeded(f"a message{of} of {size} bytes is larger than max_message_bytes={max_message_bytes}")
