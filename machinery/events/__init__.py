"""Task and worker events: published on the broker by an ``EventEmitter`` hook when
``config.events`` is on, read back by ``machinery events``, ``machinery inspect`` and the
dashboard through a ``Monitor``.

``model`` (what an event is, its JSON), ``channel`` (where events travel; the in-process channel),
``sqlite_channel`` and ``amqp_channel`` (the table and the exchange beside each broker),
``opening`` (the channel for a config),
``emitter`` (the hook), ``monitor`` (the picture events give).
"""

from __future__ import annotations

from machinery.events.channel import EventChannel, EventSubscription, MemoryEvents
from machinery.events.emitter import EventEmitter
from machinery.events.model import (
    EVENT_TYPES,
    Event,
    EventDecodeError,
    RunningTask,
    WorkerStatus,
    decode_event,
    encode_event,
)
from machinery.events.monitor import DeadLetter, Monitor, TaskView, WorkerView
from machinery.events.opening import open_channel

__all__ = [
    "EVENT_TYPES",
    "DeadLetter",
    "Event",
    "EventChannel",
    "EventDecodeError",
    "EventEmitter",
    "EventSubscription",
    "MemoryEvents",
    "Monitor",
    "RunningTask",
    "TaskView",
    "WorkerStatus",
    "WorkerView",
    "decode_event",
    "encode_event",
    "open_channel",
]
