"""The AMQP connection's declaring channel: RPCs (declaring exchanges and queues, binding, passive
declares) run in order, each started by the reply to the one before, apart from the channels that
publish and consume.

Another thread calls ``call`` and waits for the replies; the I/O thread chains steps itself with
``run_steps`` (a delay bucket declared before a message is published to it). Steps that arrive
while the channel is not open wait for it. A failed declare closes the channel (AMQP's way of
refusing one): the steps it was running fail with the broker's reason, and the channel is opened
again; a lost connection fails them too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pika.channel import Channel

from machinery.brokers.amqp_delays import Step
from machinery.errors import BrokerError

if TYPE_CHECKING:
    from pika.frame import Method

    from machinery.brokers.amqp_connection import AMQPConnection

__all__ = ["Declaring"]


class Declaring:
    """The declaring channel of ``connection`` and the steps queued for it (everything but ``call``
    runs on the I/O thread)."""

    def __init__(self, connection: AMQPConnection) -> None:
        self._connection = connection
        self._channel: Channel | None = None
        self._queued: deque[Callable[[], None]] = deque()
        """Steps waiting for the channel to open (run in order once it is)."""
        self._pending: list[Callable[[str | None], None]] = []
        """The ``finish`` of each chain of steps waiting for a reply."""

    def call(self, steps: list[Step]) -> list[Method[Any]]:
        """Run ``steps`` in order and wait for their replies, or raise ``BrokerError`` (the first
        error, the connection failing too often, or no reply within the connection's timeout).
        (Any thread but the I/O thread.)"""
        connection = self._connection
        connection.start()
        done = threading.Event()
        result: list[Method[Any]] = []
        errors: list[str] = []

        def finish(error: str | None) -> None:
            if error is not None:
                errors.append(error)
            done.set()

        self._queued.append(lambda: self.run_steps(steps, finish, result))
        connection.call_soon(self._drain)
        deadline = time.monotonic() + connection.timeout
        while not done.wait(0.05):
            why = connection.failing(time.monotonic() > deadline, "could not declare on", "no reply in time")
            if why is not None:
                raise BrokerError(why)
        if errors:
            raise BrokerError(errors[0])
        return result

    def run_steps(self, steps: list[Step], finish: Callable[[str | None], None], result: list[Method[Any]]) -> None:
        """(I/O thread) Chain ``steps`` through their reply callbacks, appending the replies to
        ``result``; ``finish`` gets None, or the first error."""
        declaring = self._channel
        if not steps:
            finish(None)
            return
        if declaring is None or not declaring.is_open:
            self._queued.append(lambda: self.run_steps(steps, finish, result))
            return
        self._pending.append(finish)

        def reply(frame: Method[Any]) -> None:
            if finish in self._pending:
                self._pending.remove(finish)
            result.append(frame)
            self.run_steps(steps[1:], finish, result)

        steps[0](declaring, reply)

    def _drain(self) -> None:
        queued = self._queued
        while self._channel is not None and self._channel.is_open and queued:
            queued.popleft()()

    def opened(self, ch: Channel) -> None:
        """(I/O thread) The declaring channel is open: run the steps waiting for it."""
        self._channel = ch
        ch.add_on_close_callback(self._closed)
        self._drain()

    def lost(self, why: str) -> None:
        """(I/O thread) The connection is gone: the steps waiting for a reply fail with ``why``."""
        self._channel = None
        self._fail(why)

    def _closed(self, ch: Channel, exc: Exception) -> None:
        """(I/O thread) A declare failed (or a passive one found nothing): report it, reopen."""
        self._channel = None
        self._fail(f"declare failed: {exc}")
        self._connection.open_channel(self.opened)

    def _fail(self, why: str) -> None:
        failed, self._pending = self._pending, []
        for finish in failed:
            finish(why)
