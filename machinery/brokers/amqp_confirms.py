"""Publisher confirms of the AMQP broker: what was published on the confirm channel and who waits
for RabbitMQ to confirm it.

RabbitMQ numbers the publishes of a confirm channel 1, 2, 3, ... and acks (or nacks) them by that
number, singly or ``multiple`` up to one. ``Confirms`` remembers each publish under its number with
its ``Waiter`` until then; an unroutable publish is returned first (``Basic.Return``) and fails its
waiter when its confirm comes. A lost connection settles every waiting publish as lost, so that the
publisher sends it again on the next one. ``Confirms`` runs on the I/O thread; a ``Waiter`` is settled
there and awaited (or followed by a callback) on the publishing thread, and ``ConfirmedPublish`` is
the publisher's handle: it waits for its publishes' confirms, sending those lost again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from machinery._speedups import Confirmed
from machinery.errors import BrokerError

if TYPE_CHECKING:
    from pika.frame import Method

    from machinery.brokers._pika_fastpath import FastPathConnection
    from machinery.brokers.amqp_connection import AMQPConnection
    from machinery.brokers.amqp_delays import Step
    from machinery.brokers.amqp_publish_frames import PublishFrames

__all__ = ["ConfirmedPublish", "Confirms", "Resolved", "Waiter", "after_confirm"]

log = logging.getLogger("machinery.brokers.amqp")


class Resolved:
    """A message resolved to where it is published and with which properties."""

    __slots__ = ("body", "exchange", "properties", "routing_key", "then")

    def __init__(self, exchange: str, routing_key: str, body: bytes, properties: BasicProperties,
                 then: list[Step] | None = None) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.properties = properties
        self.then = then
        """Declaring RPCs to run once RabbitMQ confirmed the publish (a Go delay queue declared
        again, so that its expiry counts from after the message entered it); run once per batch of
        confirms for each routing key, however many publishes to it the batch confirms."""


class Waiter:
    """Publishes waiting for RabbitMQ's confirms; settled on the I/O thread, awaited on another
    (``wait_settled``) or followed by a callback (``when_settled``)."""

    __slots__ = ("_callback", "_settled", "_token", "cancelled", "done", "error", "lost", "remaining")

    def __init__(self, count: int) -> None:
        self._settled = threading.Lock()
        """Held until every publish is settled (a lock is far cheaper to make than an Event)."""
        self._settled.acquire()
        self.done = False
        self.remaining = count
        self.error: str | None = None
        self.lost: list[int] = []
        self.cancelled = False
        self._callback: Callable[[bool], None] | None = None
        self._token = [True]
        """Popped by whichever thread runs the callback (``list.pop`` is atomic): it runs once."""
        if count == 0:
            self._set_done()

    def _set_done(self) -> None:
        if not self.done:
            self.done = True
            self._settled.release()

    def wait_settled(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every publish to be settled; whether they are."""
        if self.done:
            return True
        if self._settled.acquire(timeout=timeout):
            self._settled.release()
            return True
        return self.done

    @property
    def accepted(self) -> bool:
        """(Once settled) Every publish was confirmed: none refused, none lost."""
        return self.error is None and not self.lost

    def settle(self, index: int, error: str | None, lost: bool) -> None:
        """(I/O thread) The publish at ``index`` is confirmed (``error`` None), refused, or ``lost``."""
        if lost:
            self.lost.append(index)
        elif error is not None and self.error is None:
            self.error = error
        self.remaining -= 1
        if self.remaining <= 0:
            self._set_done()
            callback = self._callback
            if callback is not None and self._claim():
                callback(self.accepted)

    def when_settled(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(accepted)`` once every publish is settled: on the I/O thread when its
        confirms come, or at once on this thread when they already came."""
        self._callback = callback
        if self.done and self._claim():
            callback(self.accepted)

    def _claim(self) -> bool:
        try:
            self._token.pop()
        except IndexError:
            return False
        return True


def after_confirm(then: Callable[[bool], None]) -> Waiter:
    """The waiter of a single internal publish whose outcome runs ``then(accepted)`` on the I/O thread."""
    waiter = Waiter(1)
    waiter.when_settled(then)
    return waiter


#: One publish waiting for its confirm: its waiter, its index among the waiter's publishes, the publish.
_Pending = tuple[Waiter, int, Resolved]


class Confirms:
    """(I/O thread) The confirm channel's publishes that RabbitMQ has not confirmed yet."""

    def __init__(self, run_then: Callable[[list[Step]], None] | None = None) -> None:
        self._run_then = run_then
        """Runs a confirmed publish's ``then`` steps (on the declaring channel)."""
        self._pending: dict[int, _Pending] = {}
        self._returned: dict[int, str] = {}
        self._seq = 0
        self._channel: Channel | None = None
        self._fast: FastPathConnection | None = None
        self._frames: PublishFrames | None = None

    def __len__(self) -> int:
        """How many publishes wait for their confirm."""
        return len(self._pending)

    def open(self, channel: Channel, fast: FastPathConnection | None, frames: PublishFrames | None) -> None:
        """The confirm channel is open: publish on it, with frames built by ``frames`` and sent by
        ``fast`` when both are given (the fast path), else with ``Channel.basic_publish``."""
        self._channel = channel
        self._fast = fast
        self._frames = frames
        channel.add_on_return_callback(self.on_return)

    def send(self, outs: Sequence[Resolved], waiter: Waiter) -> None:
        """Publish ``outs`` on the confirm channel and remember them until confirmed. Raises as pika
        does when the channel or the connection is not open."""
        if waiter.cancelled:
            return
        channel = self._channel
        assert channel is not None
        fast = self._fast
        frames = self._frames
        pending = self._pending
        seq = self._seq
        try:
            if frames is None or fast is None or fast.is_closed or not channel.is_open:
                publish = channel.basic_publish  # raises the channel's or connection's state
                for index, out in enumerate(outs):
                    publish(out.exchange, out.routing_key, out.body, out.properties, True)
                    seq += 1
                    pending[seq] = (waiter, index, out)
                return
            emit = fast.emit_built
            build = frames.build
            for index, out in enumerate(outs):
                emit(build(out.exchange, out.routing_key, out.body, out.properties))
                seq += 1
                pending[seq] = (waiter, index, out)
        finally:
            self._seq = seq

    def on_confirm(self, frame: Method[Basic.Ack | Basic.Nack]) -> None:
        """A confirm that pika read (the fast path hands the others in batches to ``on_confirms``)."""
        method = frame.method
        self.confirmed(method.delivery_tag, bool(method.multiple), isinstance(method, Basic.Nack))

    def on_confirms(self, batch: list[Confirmed]) -> None:
        """Confirms read by the fast path's frame scanner."""
        confirmed = self.confirmed
        for tag, multiple, nack in batch:
            confirmed(tag, multiple, nack)

    def confirmed(self, tag: int, multiple: bool, nack: bool) -> None:
        """Settle every publish that this ack or nack covers."""
        pending = self._pending
        if multiple:
            tags: list[int] = []
            for seq in pending:
                if seq > tag:
                    break
                tags.append(seq)
        else:
            tags = [tag] if tag in pending else []
        then: dict[str, list[Step]] = {}
        for seq in tags:
            waiter, index, out = pending.pop(seq)
            returned = self._returned.pop(seq, None) if self._returned else None
            if nack:
                waiter.settle(index, f"RabbitMQ refused a message for {out.routing_key!r} (nack)", False)
            else:
                if out.then is not None and returned is None:
                    then.setdefault(out.routing_key, out.then)
                waiter.settle(index, returned, False)
        if then and self._run_then is not None:
            for steps in then.values():
                self._run_then(steps)

    def on_return(self, _ch: Channel, method: Basic.Return, _props: BasicProperties, body: bytes) -> None:
        """Mark an unroutable publish; its confirm follows and fails its waiter."""
        for seq, (_waiter, _index, out) in self._pending.items():
            if (seq not in self._returned and out.routing_key == method.routing_key
                    and out.exchange == method.exchange and out.body == body):
                self._returned[seq] = (
                    f"unroutable: exchange {method.exchange!r} has no queue for routing key "
                    f"{method.routing_key!r} ({method.reply_text})"
                )
                return

    def lost(self) -> None:
        """The connection is gone: every waiting publish is lost (its publisher sends it again)."""
        self._channel = self._fast = self._frames = None
        pending, self._pending = self._pending, {}
        self._returned.clear()
        self._seq = 0
        for waiter, index, _out in pending.values():
            waiter.settle(index, None, True)


class ConfirmedPublish:
    """Publishes sent and waiting for RabbitMQ's confirms; ``wait`` (any thread but the I/O thread)
    returns once all were confirmed, sending again those lost with a dropped connection a bounded
    number of times, or raises ``BrokerError``."""

    __slots__ = ("_connection", "_deadline", "_outs", "_waiter")

    def __init__(self, connection: AMQPConnection, outs: list[Resolved]) -> None:
        self._connection = connection
        self._outs = outs
        self._deadline = time.monotonic() + connection.timeout
        self._waiter = connection.send_attempt(outs)

    def when_settled(self, then: Callable[[bool], None]) -> None:
        """``then(True)`` once RabbitMQ confirmed every publish of the first attempt (on the I/O
        thread, or at once here); ``then(False)`` when one was refused or lost (``wait`` then sends
        again or raises)."""
        self._waiter.when_settled(then)

    def wait(self) -> None:
        connection = self._connection
        outs = self._outs
        waiter = self._waiter
        retries = connection.publish_retries
        for attempt in range(retries + 1):
            if attempt:
                waiter = connection.send_attempt(outs)
            while not waiter.wait_settled(0.05):
                why = connection.failing(time.monotonic() > self._deadline)
                if why is not None:
                    waiter.cancelled = True
                    raise BrokerError(why)
            if waiter.error is not None:
                raise BrokerError(waiter.error)
            if not waiter.lost:
                return
            outs = [outs[i] for i in sorted(waiter.lost)]
            log.warning("connection lost before %d confirms; publishing them again", len(outs))
            time.sleep(min(2.0, 0.05 * 2**attempt))
        raise BrokerError(f"could not publish to {connection.safe_url}: connection lost {retries + 1} times")
