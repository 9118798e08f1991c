"""The AMQP broker's connection: one background thread owning a pika ``SelectConnection`` with three
channels (publishing in confirm mode, consuming with QoS prefetch, declaring), reconnection with
capped back-off, and publishing with pipelined publisher confirms (``amqp_confirms``: the confirms
awaited, ``ConfirmedPublish`` the publisher's handle). The declaring channel and its RPCs, which
other threads wait for, are ``declaring`` (``amqp_declaring``).

Heartbeats flow while tasks run for minutes on other threads, since only this thread touches pika;
other threads hand it work with ``submit`` (marshalled through ``add_callback_threadsafe``). With
the fast path (``_pika_fastpath``), what pika writes in one pass of the loop leaves in one ``send``,
and the loop holds ``loop_lock`` except while it waits in ``poll``: a publisher that finds it free
publishes itself, in the loop's place (no wake-up of the I/O thread on a follow-up's path);
otherwise the publish is handed over.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence

import pika
from pika.adapters.select_connection import IOLoop
from pika.channel import Channel

from machinery._speedups import Delivered
from machinery.brokers import _pika_fastpath as fastpath
from machinery.brokers.amqp_confirms import ConfirmedPublish, Confirms, Resolved, Waiter
from machinery.brokers.amqp_declaring import Declaring
from machinery.brokers.amqp_delays import Step
from machinery.brokers.amqp_errors import connect_failure
from machinery.brokers.amqp_publish_frames import PublishFrames, ack_frame
from machinery.brokers.amqp_servers import AMQPServers
from machinery.errors import BrokerError
from machinery.tls import TLSSettings, describe_tls_error

__all__ = ["AMQPConnection"]

log = logging.getLogger("machinery.brokers.amqp")

_pika_log = logging.getLogger("pika")
if _pika_log.level == logging.NOTSET:
    # pika narrates every connection step at INFO and logs one refused connection as seven ERROR lines;
    # what matters is logged here in one line (its cause found by amqp_errors), with the password masked.
    _pika_log.setLevel(logging.CRITICAL)

#: Longest a publisher waits (seconds) for the I/O loop to finish a pass before handing it the publish.
_DIRECT_WAIT = 0.002
#: pika errors raised out of its I/O loop in a row that are retried before they count as failures.
_LOOP_ERRORS_FORGIVEN = 3


def _nothing() -> None:
    pass


class AMQPConnection:
    """The I/O thread and its channels. What happens on it is reported to the owner through the
    callbacks given here, all called on the I/O thread: ``on_deliveries`` (deliveries read by the
    fast path's frame scanner), ``on_lost`` (the connection is gone: void what belonged to it),
    ``on_resumed`` (publishing and consuming channels are open again) and ``on_closing`` (just
    before the connection is closed for good)."""

    def __init__(
        self,
        url: str,
        *,
        prefetch_count: int,
        connect_attempts: int,
        publish_retries: int,
        timeout: float,
        fast_path: bool = True,
        on_deliveries: Callable[[list[Delivered]], None] | None = None,
        on_lost: Callable[[], None] = _nothing,
        on_resumed: Callable[[], None] = _nothing,
        on_closing: Callable[[], None] = _nothing,
        tls: TLSSettings | None = None,
    ) -> None:
        self.servers = AMQPServers(url, tls)
        """The servers of ``url`` (several when it lists them with ``;``) and the one to connect to."""
        self.safe_url = self.servers.safe_url
        self.prefetch_count = prefetch_count
        self._connect_attempts = connect_attempts
        self.publish_retries = publish_retries
        self.timeout = timeout
        self.fast_path = fast_path
        """Use the fast path (``_pika_fastpath``) when this pika has what it needs; False: pika's public API."""
        self._on_deliveries = on_deliveries
        self._on_lost = on_lost
        self._on_resumed = on_resumed
        self._on_closing = on_closing

        # Shared with other threads.
        self._lock = threading.Lock()
        self.loop_lock = threading.Lock()
        """Held by the I/O thread except while it waits in ``poll`` (with the fast path; see ``publish``)."""
        self._direct = False
        self._ops: deque[Callable[[], None]] = deque()
        self._thread: threading.Thread | None = None
        self._ioloop: IOLoop | None = None
        self.closing = False
        """Set once ``close`` was called."""
        self._failures = 0
        self._ever_ready = False
        self._loop_errors = 0  # pika errors raised out of its loop in a row (see _loop_failed)
        """Set once a connection was opened: the first one is not retried (a wrong URL fails at once)."""
        self._last_error = ""
        self.generation = 0
        """Counts connections: deliveries carry it in their tags; a new connection voids old ones."""
        self.ready = False
        """Publishing and consuming channels are open (written by the I/O thread)."""

        # Owned by the I/O thread.
        self._conn: pika.SelectConnection | None = None
        self._fast: fastpath.FastPathConnection | None = None
        self._publishing: Channel | None = None
        self.consuming: Channel | None = None
        """The consuming channel while it is open (I/O thread)."""
        self.declaring = Declaring(self)
        """The declaring channel: ``declaring.call(steps)`` runs declaring RPCs and waits for their replies."""
        self._publishing_ok = False
        self._consuming_ok = False
        self._confirms = Confirms(run_then=self._run_after_confirm)

    def _run_after_confirm(self, steps: list[Step]) -> None:
        """(I/O thread) Run a confirmed publish's follow-on declaring steps, without waiting."""

        def finish(error: str | None) -> None:
            if error is not None:
                log.warning("declaring again after a confirmed publish failed: %s", error)

        self.declaring.run_steps(steps, finish, [])

    @property
    def direct_publishing(self) -> bool:
        """Whether a publishing thread may publish while the I/O thread sleeps (the fast path)."""
        return self._direct

    @property
    def scanning(self) -> bool:
        """Whether incoming deliveries and confirms are read by the fast path's frame scanner now."""
        fast = self._fast
        return fast is not None and fast.scanned is not None

    # ----------------------------------------------------------------- publishing with confirms

    def publish(self, outs: list[Resolved]) -> None:
        """Publish ``outs`` and wait for their confirms, retrying the ones lost with a dropped
        connection a bounded number of times. (Any thread but the I/O thread.)"""
        self.publish_begin(outs).wait()

    def publish_begin(self, outs: list[Resolved]) -> ConfirmedPublish:
        """Send ``outs`` now (from this thread while the loop sleeps, else handed to it) and return
        without waiting: the handle's ``wait`` awaits their confirms. (Any thread but the I/O thread.)"""
        self.start()
        return ConfirmedPublish(self, outs)

    def send_attempt(self, outs: Sequence[Resolved]) -> Waiter:
        """One attempt at publishing ``outs``: their confirms will settle the returned waiter."""
        waiter = Waiter(len(outs))
        if not self._publish_directly(outs, waiter):
            self.submit(functools.partial(self.publish_now, outs, waiter))
        return waiter

    def failing(
        self, timed_out: bool, doing: str = "could not publish to", otherwise: str = "no confirm in time"
    ) -> str | None:
        """Why a caller waiting for RabbitMQ (a publish for its confirms, by default) must give up
        now (the connection failed too often, or ``timed_out``), else None."""
        if self._gave_up() or timed_out:
            return self._failure_text(doing, otherwise)
        return None

    def _publish_directly(self, outs: Sequence[Resolved], waiter: Waiter) -> bool:
        """Publish from this thread, in the I/O thread's place, while that thread sleeps in ``poll``
        (no wake-up, no hand-off: the frames leave now). A loop in the middle of a pass is waited
        for briefly (a hand-off would wait for that pass and then for a wake-up), and work queued for
        it runs first, in order. False when the loop is not ready or stays busy."""
        if not self._direct or not self.ready or not self.loop_lock.acquire(timeout=_DIRECT_WAIT):
            return False
        try:
            fast = self._fast
            if not self.ready or fast is None:
                return False
            if self._ops:
                self._drain_ops()  # the I/O thread was woken for them and finds nothing left
                if self._ops:
                    return False
            before = len(self._confirms)
            fast.direct = True  # flushed just below: no flush scheduled on the loop
            try:
                self.publish_now(outs, waiter)
            except Exception:  # e.g. the channel is closing: the I/O thread's path reports it
                if len(self._confirms) != before:
                    raise
                return False
            finally:
                fast.direct = False
                fast.flush()
            return True
        finally:
            self.loop_lock.release()

    def publish_now(self, outs: Sequence[Resolved], waiter: Waiter) -> None:
        """(I/O thread) Send ``outs`` on the confirm channel; ``waiter`` learns their confirms."""
        self._confirms.send(outs, waiter)

    # ----------------------------------------------------------------- work for the I/O thread

    def send_ack(self, channel: Channel, delivery_tag: int, multiple: bool) -> None:
        """(I/O thread) ``Basic.Ack`` on the open ``channel``: as bytes built here through the fast
        path when it is active, else through pika."""
        fast = self._fast
        if fast is not None and fast.scanned is not None:
            fast.emit_built(ack_frame(channel.channel_number, delivery_tag, multiple))
        else:
            channel.basic_ack(delivery_tag, multiple=multiple)

    def on_io_thread(self) -> bool:
        """Whether the caller is the I/O thread."""
        thread = self._thread
        return thread is not None and thread.ident == threading.get_ident()

    def start(self) -> None:
        """Start the I/O thread on first use."""
        if self._thread is not None:
            return
        with self._lock:
            if self._started():
                return
            if self.closing:
                raise BrokerError("the AMQP broker is closed")
            self._ioloop = IOLoop()
            if self.fast_path and fastpath.available():
                self._direct = fastpath.hold_while_running(self._ioloop, self.loop_lock)
            self._ioloop.add_callback_threadsafe(self._connect)
            thread = threading.Thread(target=self._run_loop, name="machinery-amqp-io", daemon=True)
            thread.start()
            self._thread = thread

    def _started(self) -> bool:
        return self._thread is not None

    def _run_loop(self) -> None:
        """The I/O thread: the loop runs holding ``loop_lock`` (released while it polls)."""
        assert self._ioloop is not None
        with self.loop_lock:
            while True:
                try:
                    self._ioloop.start()
                    return
                except Exception as exc:
                    self._loop_failed(exc)

    def _loop_failed(self, exc: Exception) -> None:
        """(I/O thread) pika raised out of its loop instead of calling back; seen while a connection
        was being set up (a socket closed between its connect and ``getpeername``). The connection is
        given up as if pika had reported it, and the loop goes on; without this the I/O thread died
        and its broker never connected again."""
        log.warning("AMQP I/O loop error (%s: %s); connecting again", type(exc).__name__, exc)
        conn = self._conn
        if conn is not None and conn.is_open:
            try:
                conn.close(320, "I/O loop error")  # _on_closed reconnects
                return
            except Exception:
                log.debug("closing after an I/O loop error failed", exc_info=True)
        self._conn = None  # late callbacks of the abandoned attempt are ignored (see _on_open_error)
        # A transient error, not a verdict on the URL: the first few in a row are retried even
        # before any connection opened (when a refused first connection fails at once).
        self._loop_errors += 1
        self._on_open_error(None, exc, counted=self._loop_errors > _LOOP_ERRORS_FORGIVEN)

    def submit(self, op: Callable[[], None]) -> None:
        """Run ``op`` on the I/O thread as soon as its channels are open."""
        self.start()
        self._ops.append(op)
        ioloop = self._ioloop
        assert ioloop is not None
        ioloop.add_callback_threadsafe(self._drain_ops)

    def call_soon(self, op: Callable[[], None]) -> None:
        """Run ``op`` on the I/O thread at its next pass, whether or not the channels are open."""
        self.start()
        ioloop = self._ioloop
        assert ioloop is not None
        ioloop.add_callback_threadsafe(op)

    def open_channel(self, on_open: Callable[[Channel], None]) -> None:
        """(I/O thread) Open one more channel on the connection, unless it is gone or closing."""
        conn = self._conn
        if conn is not None and conn.is_open and not self.closing:
            conn.channel(on_open_callback=on_open)

    def call_later(self, delay: float, op: Callable[[], None]) -> None:
        """(I/O thread) Run ``op`` on the I/O thread in ``delay`` seconds."""
        assert self._ioloop is not None
        self._ioloop.call_later(delay, op)

    def _drain_ops(self) -> None:
        ops = self._ops
        while self.ready and ops:
            op = ops.popleft()
            try:
                op()
            except Exception:
                log.exception("AMQP operation failed")

    def _gave_up(self) -> bool:
        """True once connecting failed too often: once before any connection was opened (the URL
        is wrong or nothing listens) on each server of the list, ``connect_attempts`` times in a row
        after one was."""
        return self._failures >= (self._connect_attempts if self._ever_ready else len(self.servers))

    def _failure_text(self, doing: str, otherwise: str) -> str:
        if not self._ever_ready and self._last_error:
            return f"cannot open the AMQP broker {self.safe_url}: {self._last_error}"
        return f"{doing} {self.safe_url}: {self._last_error or otherwise}"

    # ----------------------------------------------------------------- closing

    def close(self) -> None:
        """Run ``on_closing`` and close the connection; unacked deliveries return to their queues."""
        thread = self._thread
        if thread is None or self.closing:
            return
        self.closing = True
        ioloop = self._ioloop
        assert ioloop is not None
        ioloop.add_callback_threadsafe(self._shutdown)
        thread.join(10.0)

    def _shutdown(self) -> None:
        """(I/O thread) Run the closing callback, close the connection, stop the loop."""
        self._on_closing()
        conn = self._conn
        if conn is not None and conn.is_open:
            conn.close()
        elif self._ioloop is not None:
            self._ioloop.stop()

    # ----------------------------------------------------------------- connecting (I/O thread)

    def _connect(self) -> None:
        """(I/O thread) Open a connection; its callbacks open the channels or schedule a retry."""
        if self.closing:
            assert self._ioloop is not None
            self._ioloop.stop()
            return
        fast = self.fast_path and fastpath.available()
        kind = fastpath.FastPathConnection if fast else pika.SelectConnection
        conn = kind(
            self.servers.current,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
            custom_ioloop=self._ioloop,
        )
        self._conn = conn
        self._fast = conn if isinstance(conn, fastpath.FastPathConnection) else None

    def _on_open(self, conn: pika.SelectConnection) -> None:
        conn.channel(on_open_callback=self._on_publishing_open)
        conn.channel(on_open_callback=self._on_consuming_open)
        conn.channel(on_open_callback=self.declaring.opened)

    def _on_open_error(self, conn: pika.SelectConnection | None, exc: BaseException, counted: bool = True) -> None:
        if conn is not None and conn is not self._conn:
            return  # an attempt given up by _loop_failed, reporting late
        if counted:
            self._failures += 1
        params = self.servers.current
        why = describe_tls_error(exc) or connect_failure(exc, params.host, params.port)
        self._last_error = self._scrub(f"{why} at {self.servers.current_url}" if len(self.servers) > 1 else why)
        self.servers.advance()
        self._retry_later()

    def _scrub(self, text: str) -> str:
        """``text`` with the password, if any, masked."""
        for password in self.servers.passwords():
            text = text.replace(password, "***")
        return text

    def _retry_later(self) -> None:
        backoff = min(5.0, 0.1 * 2 ** min(self._failures, 6))
        # Before any connection opened, the caller fails at once with this error: no warning of its own.
        log.log(logging.WARNING if self._ever_ready else logging.DEBUG,
                "AMQP connection to %s unavailable (%s); retrying in %.1fs", self.safe_url, self._last_error, backoff)
        self.call_later(backoff, self._connect)

    def _on_closed(self, conn: pika.SelectConnection, exc: BaseException) -> None:
        """(I/O thread) The connection is gone: void its deliveries and confirms, then reconnect."""
        if conn is not self._conn:
            return  # an attempt given up by _loop_failed, reporting late
        self.ready = self._publishing_ok = self._consuming_ok = False
        self._publishing = self.consuming = None
        self.generation += 1
        self._on_lost()
        self._confirms.lost()
        self.declaring.lost(f"connection lost: {exc}")
        if self.closing:
            assert self._ioloop is not None
            self._ioloop.stop()
            return
        self._last_error = f"connection lost ({type(exc).__name__})"
        log.warning("AMQP connection to %s lost: %s", self.servers.current_url, exc)
        self.servers.advance()
        self._retry_later()

    def _on_publishing_open(self, ch: Channel) -> None:
        self._publishing = ch
        fast = self._fast
        self._confirms.open(ch, fast, PublishFrames(ch.channel_number, fast.body_max_length) if fast else None)
        ch.add_on_close_callback(self._on_channel_closed)
        ch.confirm_delivery(self._confirms.on_confirm, callback=lambda _f: self._check_ready(publishing=True))

    def _on_consuming_open(self, ch: Channel) -> None:
        self.consuming = ch
        ch.add_on_close_callback(self._on_channel_closed)
        ch.basic_qos(prefetch_count=self.prefetch_count, callback=lambda _f: self._check_ready(consuming=True))

    def _check_ready(self, *, publishing: bool = False, consuming: bool = False) -> None:
        """(I/O thread) Once publishing and consuming channels are set up, resume consumers and ops."""
        self._publishing_ok = self._publishing_ok or publishing
        self._consuming_ok = self._consuming_ok or consuming
        if self.ready or not (self._publishing_ok and self._consuming_ok):
            return
        self.ready = True
        self._ever_ready = True
        self._failures = self._loop_errors = 0
        self._last_error = ""
        fast, delivering, confirming = self._fast, self.consuming, self._publishing
        if fast is not None and delivering is not None and confirming is not None and self._on_deliveries is not None:
            fast.scanned = fastpath.ScannedFrames(delivering.channel_number, self._on_deliveries,
                                                  confirming.channel_number, self._confirms.on_confirms)
        self._on_resumed()
        self._drain_ops()

    def _on_channel_closed(self, ch: Channel, exc: Exception) -> None:
        """(I/O thread) A publishing or consuming channel closed under us: start over."""
        if self._fast is not None:
            self._fast.scanned = None  # pika handles what still arrives
        conn = self._conn
        if conn is not None and conn.is_open and not self.closing:
            log.error("AMQP channel %s closed (%s); reconnecting", ch.channel_number, exc)
            conn.close(320, "channel closed")
