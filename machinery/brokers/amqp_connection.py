"""The AMQP connection under ``AMQPBroker``: one background thread owning a pika
``SelectConnection`` with three channels (publishing in confirm mode, consuming with QoS prefetch,
declaring), reconnection with capped back-off, pipelined publisher confirms and declaring RPCs
that other threads wait for.

Heartbeats flow while tasks run for minutes on other threads, since only this thread touches pika;
other threads hand it work with ``_submit`` (marshalled through ``add_callback_threadsafe``).
What pika writes in one pass of the loop leaves in one ``send`` (``amqp_socket``). The loop holds
``_loop_lock`` except while it waits in ``poll``; a publisher that finds it free publishes itself
(no wake-up of the I/O thread on a follow-up's path), otherwise the publish is handed over.
"""

from __future__ import annotations

import functools
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pika
from pika.adapters.select_connection import IOLoop
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from machinery._speedups import Confirmed, Delivered
from machinery.brokers.amqp_socket import CoalescingConnection, FastFrames, PublishFrames, hold_while_running
from machinery.errors import BrokerError
from machinery.urls import masked_url

if TYPE_CHECKING:
    from pika.frame import Method

__all__ = ["AMQPConnection", "AfterConfirm", "Resolved", "Step", "Waiter"]

log = logging.getLogger("machinery.brokers.amqp")

_pika_log = logging.getLogger("pika")
if _pika_log.level == logging.NOTSET:
    # pika narrates every connection step at INFO; what matters is logged here, with the password masked.
    _pika_log.setLevel(logging.WARNING)

#: Longest a publisher waits (seconds) for the I/O loop to finish a pass before handing it the publish.
_DIRECT_WAIT = 0.002

#: One RPC on the declaring channel: called with the channel and the callback for its reply.
Step = Callable[[Channel, Callable[["Method[Any]"], None]], None]


class Waiter:
    """Publishes waiting for RabbitMQ's confirms; settled on the I/O thread, awaited on another."""

    __slots__ = ("cancelled", "error", "event", "lost", "remaining")

    def __init__(self, count: int) -> None:
        self.event = threading.Event()
        self.remaining = count
        self.error: str | None = None
        self.lost: list[int] = []
        self.cancelled = False
        if count == 0:
            self.event.set()

    def settle(self, index: int, error: str | None, lost: bool) -> None:
        if lost:
            self.lost.append(index)
        elif error is not None and self.error is None:
            self.error = error
        self.remaining -= 1
        if self.remaining <= 0:
            self.event.set()


class AfterConfirm(Waiter):
    """A single internal publish whose outcome runs a callback on the I/O thread."""

    __slots__ = ("then",)

    def __init__(self, then: Callable[[bool], None]) -> None:
        super().__init__(1)
        self.then = then

    def settle(self, index: int, error: str | None, lost: bool) -> None:
        super().settle(index, error, lost)
        self.then(error is None and not lost)


class Resolved:
    """A message resolved to where it is published and with which properties."""

    __slots__ = ("body", "exchange", "properties", "routing_key")

    def __init__(self, exchange: str, routing_key: str, body: bytes, properties: BasicProperties) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.properties = properties


class AMQPConnection:
    """The I/O thread and its channels; ``AMQPBroker`` builds the broker protocol on top.

    Subclasses override the hooks ``_connection_lost`` (the connection is gone: void what belonged
    to it), ``_resumed`` (channels are open again) and ``_closing_hook`` (just before closing)."""

    def __init__(
        self,
        url: str,
        *,
        prefetch_count: int,
        connect_attempts: int,
        publish_retries: int,
        timeout: float,
    ) -> None:
        self._safe_url = masked_url(url)
        scheme = url.partition("://")[0].lower()
        if scheme not in ("amqp", "amqps"):
            raise BrokerError(f"not an AMQP URL: {self._safe_url}")
        try:
            params = pika.URLParameters(url)
        except Exception as exc:  # the parser's own message may quote the URL: never shown
            raise BrokerError(f"bad AMQP URL {self._safe_url}: {type(exc).__name__}") from None
        if scheme == "amqps":
            params.ssl_options = pika.SSLOptions(ssl.create_default_context(), server_hostname=params.host)
        params.connection_attempts = 1
        self._params = params
        self.prefetch_count = prefetch_count
        self._connect_attempts = connect_attempts
        self._publish_retries = publish_retries
        self._timeout = timeout

        # Shared with other threads.
        self._lock = threading.Lock()
        self._loop_lock = threading.Lock()
        """Held by the I/O thread except while it waits in ``poll`` (see ``_publish_directly``)."""
        self._direct = False
        self._ops: deque[Callable[[], None]] = deque()
        self._admin_ops: deque[Callable[[], None]] = deque()
        self._thread: threading.Thread | None = None
        self._ioloop: IOLoop | None = None
        self._closing = False
        self._failures = 0
        self._last_error = ""
        self._gen = 0
        """Connection generation: deliveries carry it in their tags; a new connection voids old ones."""
        self._scan_frames = True
        """Read deliveries and confirms with the hot path's frame scanner (False: all through pika)."""

        # Owned by the I/O thread.
        self._conn: CoalescingConnection | None = None
        self._pub: Channel | None = None
        self._con: Channel | None = None
        self._adm: Channel | None = None
        self._ready = False
        self._pub_ok = False
        self._con_ok = False
        self._pub_seq = 0
        self._frames: PublishFrames | None = None
        self._unconfirmed: dict[int, tuple[Waiter, int, Resolved]] = {}
        self._returned: dict[int, str] = {}
        self._admin_pending: list[Callable[[str | None], None]] = []

    # ----------------------------------------------------------------- hooks

    def _connection_lost(self) -> None:
        """(I/O thread) The connection is gone; what belonged to it is void."""

    def _resumed(self) -> None:
        """(I/O thread) Publishing and consuming channels are open (again)."""

    def _closing_hook(self) -> None:
        """(I/O thread) Called just before the connection is closed for good."""

    def _on_deliveries(self, batch: list[Delivered]) -> None:
        """(I/O thread) Deliveries on the consuming channel read by the frame scanner."""
        raise NotImplementedError

    # ----------------------------------------------------------------- publishing with confirms

    def _publish_confirmed(self, outs: list[Resolved]) -> None:
        """Publish ``outs`` on the I/O thread and wait for their confirms, retrying the ones lost with
        a dropped connection a bounded number of times."""
        self._start()
        deadline = time.monotonic() + self._timeout
        for attempt in range(self._publish_retries + 1):
            waiter = Waiter(len(outs))
            if not self._publish_directly(outs, waiter):
                self._submit(functools.partial(self._publish_now, outs, waiter))
            while not waiter.event.wait(0.05):
                if self._failures >= self._connect_attempts or time.monotonic() > deadline:
                    waiter.cancelled = True
                    why = self._last_error or "no confirm in time"
                    raise BrokerError(f"could not publish to {self._safe_url}: {why}")
            if waiter.error is not None:
                raise BrokerError(waiter.error)
            if not waiter.lost:
                return
            outs = [outs[i] for i in sorted(waiter.lost)]
            log.warning("connection lost before %d confirms; publishing them again", len(outs))
            time.sleep(min(2.0, 0.05 * 2**attempt))
        raise BrokerError(f"could not publish to {self._safe_url}: connection lost {self._publish_retries + 1} times")

    def _publish_directly(self, outs: Sequence[Resolved], waiter: Waiter) -> bool:
        """Publish from this thread while the I/O thread sleeps in ``poll`` (no wake-up, no hand-off:
        the frames leave now). A loop in the middle of a pass is waited for briefly (a hand-off would
        wait for that pass and then for a wake-up), and work queued for it runs first, in order.
        False when the loop is not ready or stays busy."""
        if not self._direct or not self._ready or not self._loop_lock.acquire(timeout=_DIRECT_WAIT):
            return False
        try:
            conn = self._conn
            if not self._ready or conn is None:
                return False
            if self._ops:
                self._drain_ops()  # the I/O thread was woken for them and finds nothing left
                if self._ops:
                    return False
            before = len(self._unconfirmed)
            try:
                self._publish_now(outs, waiter)
            except Exception:  # e.g. the channel is closing: the I/O thread's path reports it
                if len(self._unconfirmed) != before:
                    raise
                return False
            conn._flush_outgoing()
            return True
        finally:
            self._loop_lock.release()

    def _publish_now(self, outs: Sequence[Resolved], waiter: Waiter) -> None:
        """(I/O thread) Send ``outs`` on the confirm channel and remember them until confirmed. Their
        frames are built by ``PublishFrames`` (pika's ``basic_publish`` costs more per call); the
        delivery tags RabbitMQ confirms count publishes on the channel, in order."""
        if waiter.cancelled:
            return
        pub = self._pub
        assert pub is not None
        conn = self._conn
        frames = self._frames
        pending = self._unconfirmed
        seq = self._pub_seq
        try:
            if frames is None or conn is None or conn.is_closed or not pub.is_open:
                publish = pub.basic_publish  # raises the channel's or connection's state
                for index, out in enumerate(outs):
                    publish(out.exchange, out.routing_key, out.body, out.properties, True)
                    seq += 1
                    pending[seq] = (waiter, index, out)
                return
            emit = conn.emit_built
            build = frames.build
            for index, out in enumerate(outs):
                emit(build(out.exchange, out.routing_key, out.body, out.properties))
                seq += 1
                pending[seq] = (waiter, index, out)
        finally:
            self._pub_seq = seq

    def _on_confirm(self, frame: Method[Basic.Ack | Basic.Nack]) -> None:
        """(I/O thread) A confirm that pika read (the others come in batches to ``_on_confirms``)."""
        method = frame.method
        self._confirmed(method.delivery_tag, bool(method.multiple), isinstance(method, Basic.Nack))

    def _on_confirms(self, batch: list[Confirmed]) -> None:
        """(I/O thread) Confirms read by the connection's frame scanner."""
        confirmed = self._confirmed
        for tag, multiple, nack in batch:
            confirmed(tag, multiple, nack)

    def _confirmed(self, tag: int, multiple: bool, nack: bool) -> None:
        """(I/O thread) Settle every publish that this ack or nack covers."""
        pending = self._unconfirmed
        if multiple:
            tags: list[int] = []
            for seq in pending:
                if seq > tag:
                    break
                tags.append(seq)
        else:
            tags = [tag] if tag in pending else []
        for seq in tags:
            waiter, index, out = pending.pop(seq)
            returned = self._returned.pop(seq, None) if self._returned else None
            if nack:
                waiter.settle(index, f"RabbitMQ refused a message for {out.routing_key!r} (nack)", False)
            elif returned is not None:
                waiter.settle(index, returned, False)
            else:
                waiter.settle(index, None, False)

    def _on_return(self, _ch: Channel, method: Basic.Return, _props: BasicProperties, body: bytes) -> None:
        """(I/O thread) Mark an unroutable publish; its confirm follows and fails its waiter."""
        for seq, (_w, _i, out) in self._unconfirmed.items():
            if (seq not in self._returned and out.routing_key == method.routing_key
                    and out.exchange == method.exchange and out.body == body):
                self._returned[seq] = (
                    f"unroutable: exchange {method.exchange!r} has no queue for routing key "
                    f"{method.routing_key!r} ({method.reply_text})"
                )
                return

    # ----------------------------------------------------------------- closing

    def close(self) -> None:
        """Send pending acks and close the connection; unacked deliveries return to their queues."""
        thread = self._thread
        if thread is None or self._closing:
            return
        self._closing = True
        ioloop = self._ioloop
        assert ioloop is not None
        ioloop.add_callback_threadsafe(self._shutdown)
        thread.join(10.0)

    def _shutdown(self) -> None:
        """(I/O thread) Run the closing hook, close the connection, stop the loop."""
        self._closing_hook()
        conn = self._conn
        if conn is not None and conn.is_open:
            conn.close()
        elif self._ioloop is not None:
            self._ioloop.stop()

    # ----------------------------------------------------------------- the I/O thread

    def _start(self) -> None:
        """Start the I/O thread on first use."""
        if self._thread is not None:
            return
        with self._lock:
            if self._started():
                return
            if self._closing:
                raise BrokerError("the AMQP broker is closed")
            self._ioloop = IOLoop()
            self._direct = hold_while_running(self._ioloop, self._loop_lock)
            self._ioloop.add_callback_threadsafe(self._connect)
            thread = threading.Thread(target=self._run_loop, name="machinery-amqp-io", daemon=True)
            thread.start()
            self._thread = thread

    def _run_loop(self) -> None:
        """The I/O thread: the loop runs holding ``_loop_lock`` (released while it polls)."""
        assert self._ioloop is not None
        with self._loop_lock:
            self._ioloop.start()

    def _started(self) -> bool:
        return self._thread is not None

    def _submit(self, op: Callable[[], None]) -> None:
        """Run ``op`` on the I/O thread as soon as its channels are open."""
        self._start()
        self._ops.append(op)
        ioloop = self._ioloop
        assert ioloop is not None
        ioloop.add_callback_threadsafe(self._drain_ops)

    def _drain_ops(self) -> None:
        ops = self._ops
        while self._ready and ops:
            op = ops.popleft()
            try:
                op()
            except Exception:
                log.exception("AMQP operation failed")

    def _admin(self, steps: list[Step]) -> list[Method[Any]]:
        """Run declaring RPCs in order on the I/O thread's declaring channel and wait for their replies."""
        self._start()
        done = threading.Event()
        result: list[Method[Any]] = []
        errors: list[str] = []

        def finish(error: str | None) -> None:
            if error is not None:
                errors.append(error)
            done.set()

        self._admin_ops.append(lambda: self._run_steps(steps, finish, result))
        ioloop = self._ioloop
        assert ioloop is not None
        ioloop.add_callback_threadsafe(self._drain_admin)
        deadline = time.monotonic() + self._timeout
        while not done.wait(0.05):
            if self._failures >= self._connect_attempts or time.monotonic() > deadline:
                raise BrokerError(f"could not declare on {self._safe_url}: {self._last_error or 'no reply in time'}")
        if errors:
            raise BrokerError(errors[0])
        return result

    def _drain_admin(self) -> None:
        ops = self._admin_ops
        while self._adm is not None and self._adm.is_open and ops:
            ops.popleft()()

    def _run_steps(self, steps: list[Step], finish: Callable[[str | None], None], result: list[Method[Any]]) -> None:
        """(I/O thread) Chain ``steps`` through their reply callbacks; ``finish`` gets the first error."""
        adm = self._adm
        if not steps:
            finish(None)
            return
        if adm is None or not adm.is_open:
            self._admin_ops.append(lambda: self._run_steps(steps, finish, result))
            return
        self._admin_pending.append(finish)

        def reply(frame: Method[Any]) -> None:
            if finish in self._admin_pending:
                self._admin_pending.remove(finish)
            result.append(frame)
            self._run_steps(steps[1:], finish, result)

        steps[0](adm, reply)

    def _connect(self) -> None:
        """(I/O thread) Open a connection; its callbacks open the channels or schedule a retry."""
        if self._closing:
            assert self._ioloop is not None
            self._ioloop.stop()
            return
        self._conn = CoalescingConnection(
            self._params,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
            custom_ioloop=self._ioloop,
        )

    def _on_open(self, conn: pika.SelectConnection) -> None:
        conn.channel(on_open_callback=self._on_pub_open)
        conn.channel(on_open_callback=self._on_con_open)
        conn.channel(on_open_callback=self._on_adm_open)

    def _on_open_error(self, _conn: pika.SelectConnection, exc: BaseException) -> None:
        self._failures += 1
        self._last_error = self._scrub(f"cannot connect ({type(exc).__name__}: {exc})")
        self._retry_later()

    def _scrub(self, text: str) -> str:
        """``text`` with the password, if any, masked."""
        password = getattr(self._params.credentials, "password", "")
        return text.replace(password, "***") if isinstance(password, str) and len(password) > 2 else text

    def _retry_later(self) -> None:
        backoff = min(5.0, 0.1 * 2 ** min(self._failures, 6))
        log.warning("AMQP connection to %s unavailable (%s); retrying in %.1fs", self._safe_url,
                    self._last_error, backoff)
        assert self._ioloop is not None
        self._ioloop.call_later(backoff, self._connect)

    def _on_closed(self, _conn: pika.SelectConnection, exc: BaseException) -> None:
        """(I/O thread) The connection is gone: void its deliveries and confirms, then reconnect."""
        self._ready = self._pub_ok = self._con_ok = False
        self._pub = self._con = self._adm = None
        self._frames = None
        self._gen += 1
        self._connection_lost()
        pending, self._unconfirmed = self._unconfirmed, {}
        self._returned.clear()
        self._pub_seq = 0
        for waiter, index, _out in pending.values():
            waiter.settle(index, None, True)
        failed, self._admin_pending = self._admin_pending, []
        for finish in failed:
            finish(f"connection lost: {exc}")
        if self._closing:
            assert self._ioloop is not None
            self._ioloop.stop()
            return
        self._last_error = f"connection lost ({type(exc).__name__})"
        log.warning("AMQP connection to %s lost: %s", self._safe_url, exc)
        self._retry_later()

    def _on_pub_open(self, ch: Channel) -> None:
        self._pub = ch
        conn = self._conn
        self._frames = PublishFrames(ch.channel_number, conn.body_max_length) if conn is not None else None
        ch.add_on_close_callback(self._on_channel_closed)
        ch.add_on_return_callback(self._on_return)
        ch.confirm_delivery(self._on_confirm, callback=lambda _f: self._check_ready(pub=True))

    def _on_con_open(self, ch: Channel) -> None:
        self._con = ch
        ch.add_on_close_callback(self._on_channel_closed)
        ch.basic_qos(prefetch_count=self.prefetch_count, callback=lambda _f: self._check_ready(con=True))

    def _on_adm_open(self, ch: Channel) -> None:
        self._adm = ch
        ch.add_on_close_callback(self._on_adm_closed)
        self._drain_admin()

    def _check_ready(self, *, pub: bool = False, con: bool = False) -> None:
        """(I/O thread) Once publishing and consuming channels are set up, resume consumers and ops."""
        self._pub_ok = self._pub_ok or pub
        self._con_ok = self._con_ok or con
        if self._ready or not (self._pub_ok and self._con_ok):
            return
        self._ready = True
        self._failures = 0
        self._last_error = ""
        conn, consuming, publishing = self._conn, self._con, self._pub
        if (conn is not None and consuming is not None and publishing is not None and conn.can_scan
                and self._scan_frames):
            conn.fast = FastFrames(consuming.channel_number, self._on_deliveries, publishing.channel_number,
                                   self._on_confirms)
        self._resumed()
        self._drain_ops()

    def _on_channel_closed(self, ch: Channel, exc: Exception) -> None:
        """(I/O thread) A publishing or consuming channel closed under us: start over."""
        conn = self._conn
        if conn is not None:
            conn.fast = None  # pika handles what still arrives
        if conn is not None and conn.is_open and not self._closing:
            log.error("AMQP channel %s closed (%s); reconnecting", ch.channel_number, exc)
            conn.close(320, "channel closed")

    def _on_adm_closed(self, ch: Channel, exc: Exception) -> None:
        """(I/O thread) A declare failed (or a passive one found nothing): report it, reopen."""
        self._adm = None
        failed, self._admin_pending = self._admin_pending, []
        for finish in failed:
            finish(f"declare failed: {exc}")
        conn = self._conn
        if conn is not None and conn.is_open and not self._closing:
            conn.channel(on_open_callback=self._on_adm_open)
