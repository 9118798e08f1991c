"""Names unique to a test, for queues, exchanges and keys on servers other tests share."""

from __future__ import annotations

import uuid

__all__ = ["unique_name"]


def unique_name(prefix: str = "t") -> str:
    """``<prefix>-<12 hex digits>``: a name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
