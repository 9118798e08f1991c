"""Reading events back: a ``Follower`` keeps a subscription alive (subscribing again after the
broker went away) and feeds a ``Monitor``; ``describe`` writes one event as one line."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone

from machinery.config import Config
from machinery.errors import MachineryError
from machinery.events.channel import EventChannel, EventSubscription
from machinery.events.model import Event, EventDecodeError, decode_event
from machinery.events.monitor import Monitor
from machinery.events.opening import open_channel

__all__ = ["Follower", "describe", "read_events"]

log = logging.getLogger("machinery.events")

#: Seconds before subscribing again after the channel failed.
RESUBSCRIBE_DELAY = 1.0


def read_events(sub: EventSubscription, timeout: float) -> list[Event]:
    """The events ``sub`` gives within ``timeout`` seconds; undecodable ones are logged and skipped."""
    events = []
    for body in sub.read(timeout):
        try:
            events.append(decode_event(body))
        except EventDecodeError as exc:
            log.warning("skipping an event that cannot be read: %s", exc)
    return events


def describe(event: Event) -> str:
    """One line for ``event``: time, type, task or worker, and what it says."""
    when = datetime.fromtimestamp(event.timestamp, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    parts = [when, f"{event.type:<19}"]
    if event.worker is not None:
        status = event.worker
        parts += [event.source, f"queues={','.join(status.queues)}", f"threads={status.concurrency}",
                  f"running={len(status.running)}", f"processed={status.processed}"]
        return " ".join(parts)
    if event.uuid:
        parts.append(f"{event.name}[{event.uuid}]")
    if event.queue:
        parts.append(f"queue={event.queue}")
    if event.type != "task-sent":
        parts.append(f"worker={event.source}")
    if event.duration is not None:
        parts.append(f"{event.duration * 1000:.1f} ms")
    if event.delay is not None:
        parts.append(f"again in {event.delay:g}s")
    if event.error:
        parts.append(f"error={event.error!r}")
    return " ".join(parts)


class Follower:
    """Follows the event channel of ``config`` in a background thread into ``monitor``, starting
    ``history`` seconds back where the channel keeps events; ``on_event`` sees each one too."""

    def __init__(
        self,
        config: Config,
        monitor: Monitor,
        *,
        history: float = 0.0,
        on_event: Callable[[Event], None] | None = None,
        open_events: Callable[[Config], EventChannel] = open_channel,
    ) -> None:
        self.config = config
        self.monitor = monitor
        self.history = history
        self._on_event = on_event
        self._open = open_events
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="machinery-follower", daemon=True)
        self.subscribed = threading.Event()
        """Set once the first subscription is in place."""
        self.error = ""
        """The last failure, while it lasts ("" once following again)."""

    def start(self) -> Follower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        history = self.history
        while not self._stop.is_set():
            try:
                channel = self._open(self.config)
                try:
                    sub = channel.subscribe(history)
                    try:
                        self.subscribed.set()
                        self.error = ""
                        history = 0.0  # after a failure, follow from then on
                        while not self._stop.is_set():
                            for event in read_events(sub, 0.25):
                                self.monitor.apply(event)
                                if self._on_event is not None:
                                    self._on_event(event)
                    finally:
                        sub.close()
                finally:
                    channel.close()
            except MachineryError as exc:
                self.error = str(exc)
                log.warning("events: %s; subscribing again in %gs", exc, RESUBSCRIBE_DELAY)
                self._stop.wait(RESUBSCRIBE_DELAY)
