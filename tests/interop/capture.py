"""An in-memory broker that keeps every message published to it, for the go-mode tests that read
what a worker sends."""

from __future__ import annotations

from collections.abc import Sequence

from machinery.brokers.base import OutgoingMessage
from machinery.brokers.memory import MemoryBroker


class Capture(MemoryBroker):
    """An in-memory broker that keeps every message published to it."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[OutgoingMessage] = []

    def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        self.published.extend(messages)
        super().publish_many(messages)
