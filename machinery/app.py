"""The App: configuration, registered tasks, the broker and the result backend, and sending."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from machinery._speedups import decode
from machinery.backends import open_backend
from machinery.backends.base import GoResults, ResultBackend
from machinery.backends.control import control_store
from machinery.brokers import open_broker
from machinery.brokers.base import Broker, OutgoingMessage
from machinery.config import Config, load_config
from machinery.dead_letters import DeadLetter, list_dead_letters, purge_dead_letters, requeue_dead_letters
from machinery.errors import ConfigError, DecodeError
from machinery.hooks import Hooks
from machinery.limits import check_members
from machinery.periodic import Periodic, PeriodicWork, Schedule, from_config, schedule
from machinery.rate_limits import RateLimit, RateLimiter, parse_rate_limit
from machinery.registry import Registry
from machinery.result import AsyncResult, ChainResult, ChordResult, GroupResult, Siblings
from machinery.revoke import DEFAULT_EXPIRY, Revoker, revoke
from machinery.routing import Router
from machinery.signature import Signature
from machinery.states import TaskResult, TaskState
from machinery.task import Task
from machinery.task_function import TaskDecorator, TaskFunction
from machinery.urls import masked_url
from machinery.worker import Worker
from machinery.workflows import Chain, Chord, Group, NoResult, TypedSignature

if TYPE_CHECKING:
    from machinery.events.emitter import EventEmitter

__all__ = ["App", "init_app"]

P = ParamSpec("P")
R = TypeVar("R")


class App:
    """A machinery application. Build it from a Config (``load_config()`` when
    none is given), register tasks, send them, and run workers with ``app.worker()``.

    The broker and result backend are opened on first use from the config's URLs, unless given.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        broker: Broker | None = None,
        backend: ResultBackend | None = None,
    ) -> None:
        self.config = config if config is not None else load_config()
        self.registry = Registry()
        self._lock = threading.Lock()
        self._broker = broker
        self._backend = backend
        self._backend_opened = backend is not None
        self._declared: set[str] = set()
        self._routed: tuple[Config, Router] | None = None
        self.hooks = Hooks()
        """Hooks called at fixed points of every task's life (``app.hooks.add(hook)``)."""
        self._events: EventEmitter | None = None
        self._revoker: Revoker | None = None
        self._rate_limiter: RateLimiter | None = None
        self._periodic: list[Periodic] = []
        if self.config.events:
            self.enable_events()

    def __repr__(self) -> str:
        c = self.config
        return f"<App broker={masked_url(c.broker_url)!r} backend={masked_url(c.result_backend)!r}>"

    # -- transport ----------------------------------------------------------------------------

    @property
    def broker(self) -> Broker:
        """The broker (opened from ``config.broker_url`` on first use)."""
        broker = self._broker
        if broker is None:
            with self._lock:
                if self._broker is None:
                    self._broker = open_broker(self.config)
                broker = self._broker
        return broker

    @property
    def backend(self) -> ResultBackend | None:
        """The result backend, or None when ``config.result_backend`` is "none"."""
        if not self._backend_opened:
            with self._lock:
                if not self._backend_opened:
                    self._backend = open_backend(self.config)
                    self._backend_opened = True
        return self._backend

    def enable_events(self) -> EventEmitter:
        """Publish task and worker events on the broker's event channel (``config.events`` turns
        this on when the App is made); returns the hook that does it. Calling it again is harmless."""
        from machinery.events import EventEmitter, open_channel

        with self._lock:
            if self._events is None:
                self._events = EventEmitter(
                    lambda: open_channel(self.config),
                    default_queue=self.config.default_queue,
                    heartbeat_interval=self.config.heartbeat_interval,
                )
                self.hooks.add(self._events)
            return self._events

    def close(self) -> None:
        """Publish the events still buffered; close the broker and the result backend (they
        reopen on next use)."""
        if self._events is not None:
            self._events.close()
        with self._lock:
            broker, backend = self._broker, self._backend
            self._broker, self._backend, self._backend_opened = None, None, False
            self._declared.clear()
        if broker is not None:
            broker.close()
        if backend is not None:
            backend.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- registering --------------------------------------------------------------------------

    def register_task(
        self,
        name: str,
        task: Task | Callable[..., object],
        *,
        replace: bool = False,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        rate_limit: str | None = None,
    ) -> Task:
        """Register ``task`` (an object with ``run(args)`` or a plain function) as ``name``, with
        default time limits in seconds (see ``Signature.with_time_limits``); ``rate_limit``
        ("100/s", "10/m", "1000/h") limits how often it runs."""
        limit = None if rate_limit is None else parse_rate_limit(rate_limit)
        registered = self.registry.register(
            name, task, replace=replace, time_limit=time_limit, soft_time_limit=soft_time_limit
        )
        if limit is not None:
            self.rate_limit(name, limit)
        return registered

    def rate_limit(self, name: str, limit: str | RateLimit | None) -> None:
        """Limit how often task ``name`` runs, on all workers sharing this result store (None: no
        limit)."""
        parsed = parse_rate_limit(limit) if isinstance(limit, str) else limit
        with self._lock:
            if self._rate_limiter is None:
                if parsed is None:
                    return
                self._rate_limiter = RateLimiter(lambda: self.backend)
                self.hooks.add(self._rate_limiter)
            limiter = self._rate_limiter
        limiter.limit(name, parsed)

    def register_tasks(self, tasks: Mapping[str, Task | Callable[..., object]]) -> None:
        """Register every name -> task of ``tasks`` (all or none)."""
        self.registry.register_many(tasks)

    @overload
    def task(self, function: Callable[P, R], /) -> TaskFunction[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        replace: bool = False,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        rate_limit: str | None = None,
    ) -> TaskDecorator: ...

    def task(
        self,
        function: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        replace: bool = False,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        rate_limit: str | None = None,
    ) -> Any:
        """Register a function as a task, named ``name`` or the function's ``__name__``:
        ``@app.task`` or ``@app.task(name="add", time_limit=60, rate_limit="10/s")``. The function stays callable,
        and becomes a ``TaskFunction[P, R]``: ``.s``, ``.si``, ``.partial`` and ``.delay`` are checked against its
        parameters, and a worker checks and converts the args against its annotations."""

        def register(fn: Callable[..., Any]) -> TaskFunction[..., Any]:
            task_name = name or fn.__name__
            self.register_task(
                task_name, fn, replace=replace, time_limit=time_limit, soft_time_limit=soft_time_limit,
                rate_limit=rate_limit,
            )
            return TaskFunction(self, task_name, fn)

        if function is not None:
            return register(function)
        return register

    # -- sending ------------------------------------------------------------------------------

    @property
    def _router(self) -> Router:
        """Builds messages under this App's config (limits, signing); follows ``self.config``."""
        routed = self._routed
        if routed is None or routed[0] is not self.config:
            routed = self._routed = (self.config, Router(self.config, self.registry))
        return routed[1]

    def _declare(self, queues: Sequence[str]) -> None:
        new = [q for q in queues if q not in self._declared]
        if new:
            self.broker.declare(new)
            self._declared.update(new)

    def _outgoing(self, sig: Signature) -> OutgoingMessage:
        hooks = self.hooks
        if hooks.wants_publish:
            sig = hooks.before_publish(sig)
        return self._router.message(sig)

    def _publish(self, messages: Sequence[OutgoingMessage]) -> None:
        self._declare(sorted({m.queue for m in messages}))
        # publish_many even for one message: it carries the headers (signature) and the task name
        # (by which a SQLite worker claims only the tasks it has), which publish() does not.
        self.broker.publish_many(messages)

    @overload
    def send_task(self, work: TypedSignature[NoResult, R, Any]) -> AsyncResult[R]: ...
    @overload
    def send_task(self, work: Signature) -> AsyncResult: ...
    @overload
    def send_task(self, work: Chain[R, Any]) -> ChainResult[R]: ...
    @overload
    def send_task(self, work: Group[R]) -> GroupResult[R]: ...
    @overload
    def send_task(self, work: Chord[R]) -> ChordResult[R]: ...

    def send_task(
        self, work: Signature | TypedSignature[Any, Any, Any] | Chain[Any, Any] | Group[Any] | Chord[Any]
    ) -> AsyncResult[Any] | GroupResult[Any] | ChordResult[Any]:
        """Send a task, typed task call, chain, group or chord; returns a handle on its result
        (typed as the task's, the chain's last step's or the chord callback's result). Nothing is
        stored in the result backend on send (no stored state means PENDING)."""
        if isinstance(work, TypedSignature):
            sig = work.signature
            self._publish([self._outgoing(sig)])
            return AsyncResult(sig.uuid, self.backend, name=sig.name, result_type=work.result_type)
        if isinstance(work, Signature):
            self._publish([self._outgoing(work)])
            return AsyncResult(work.uuid, self.backend, name=work.name)
        if isinstance(work, Chain):
            self._publish([self._outgoing(work.head)])
            return self._chain_result(work)
        if isinstance(work, Group):
            return self._send_group(work)
        if isinstance(work, Chord):
            if self.backend is None:
                raise ConfigError(
                    "result_backend", "a result backend to run a chord (it collects the members' results)", "none"
                )
            group_result = self._send_group(work.group)
            callback = AsyncResult[Any](
                work.callback.uuid, self.backend, name=work.callback.name, result_type=work.result_type
            )
            return ChordResult(group_result, callback)
        raise TypeError(f"send_task() takes a Signature, Chain, Group or Chord, got {type(work).__name__}")

    def _chain_result(self, work: Chain[Any, Any]) -> ChainResult[Any]:
        backend = self.backend
        steps = [AsyncResult[Any](s.uuid, backend, name=s.name) for s in work.steps]
        steps[-1].result_type = work.result_type
        return ChainResult(steps, backend)

    def _send_group(self, grp: Group[Any]) -> GroupResult[Any]:
        backend = self.backend
        check_members(len(grp.tasks), self.config.max_fanout)
        messages = [self._outgoing(s) for s in grp.tasks]
        if backend is not None:
            backend.group_start(grp.group_uuid, [s.uuid for s in grp.tasks])
            if self._router.go and isinstance(backend, GoResults):
                # As Go's SendGroup: every member PENDING before any is sent (a Go worker's group
                # check reads every member's state, and fails on one that has none).
                now = time.time()
                backend.set_many([TaskResult(s.uuid, TaskState.PENDING, s.name, updated_at=now) for s in grp.tasks])
        self._publish(messages)
        types = grp.result_types or (None,) * len(grp.tasks)
        members = zip(grp.tasks, types, strict=True)
        return GroupResult(
            grp.group_uuid, [AsyncResult[Any](s.uuid, backend, name=s.name, result_type=t) for s, t in members]
        )

    def send_tasks(
        self, works: Sequence[Signature | TypedSignature[NoResult, Any, Any] | Chain[Any, Any]]
    ) -> list[AsyncResult[Any]]:
        """Send several tasks or chains in one batch (``publish_many``); their result handles."""
        backend = self.backend
        messages: list[OutgoingMessage] = []
        results: list[AsyncResult[Any]] = []
        siblings = Siblings([w.signature.uuid if isinstance(w, TypedSignature) else w.uuid
                             for w in works if isinstance(w, TypedSignature | Signature)])
        for work in works:
            if isinstance(work, Chain):
                messages.append(self._outgoing(work.head))
                results.append(self._chain_result(work))
            elif isinstance(work, TypedSignature):
                sig = work.signature
                messages.append(self._outgoing(sig))
                results.append(AsyncResult(sig.uuid, backend, name=sig.name, result_type=work.result_type,
                                           siblings=siblings))
            elif isinstance(work, Signature):
                messages.append(self._outgoing(work))
                results.append(AsyncResult(work.uuid, backend, name=work.name, siblings=siblings))
            else:
                raise TypeError(f"send_tasks() takes Signatures and Chains, got {type(work).__name__}")
        if messages:
            self._publish(messages)
        return results

    def dead_letters(self, queue: str | None = None, *, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters of ``queue`` (default: ``config.default_queue``), oldest first."""
        return list_dead_letters(self.broker, queue or self.config.default_queue, limit)

    def requeue_dead(self, ids: Sequence[str] | None = None, *, queue: str | None = None) -> list[str]:
        """Send dead letters ``ids`` of ``queue`` (all when None) back to it, forgetting the failure
        recorded for each (their results wait for the new run); the ids requeued."""
        return requeue_dead_letters(self.broker, queue or self.config.default_queue, ids, self.backend)

    def purge_dead(self, queue: str | None = None) -> int:
        """Delete the dead letters of ``queue``; how many there were."""
        return purge_dead_letters(self.broker, queue or self.config.default_queue)

    def periodic(
        self,
        when: str | float | timedelta | Schedule,
        work: PeriodicWork,
        *,
        name: str,
        timezone: str = "UTC",
    ) -> Periodic:
        """Send ``work`` (a Signature, chain, group or chord; a fresh copy each time) on a cron
        schedule (``"*/5 * * * *"``, in ``timezone``) or every ``when`` seconds, whenever ``machinery
        beat`` (or ``worker --beat``) runs for this App."""
        entry = Periodic(name, schedule(when, timezone), work)
        with self._lock:
            if any(e.name == name for e in self._periodic):
                raise ValueError(f"a periodic entry named {name!r} exists already")
            self._periodic.append(entry)
        return entry

    def periodic_entries(self) -> list[Periodic]:
        """The periodic entries of the config's ``periodic`` section, then those added by ``periodic``."""
        return [*from_config(self.config.periodic), *self._periodic]

    # -- inspecting ---------------------------------------------------------------------------

    def pending_tasks(self, queue: str | None = None, limit: int = 1000) -> list[Signature]:
        """Up to ``limit`` tasks waiting in ``queue`` (default: the default queue), in delivery order,
        left where they are (Go Machinery's ``GetPendingTasks``). SQLite and in-memory brokers can
        list; RabbitMQ cannot without consuming, so there it raises ``BrokerError``. Messages that
        do not decode are left out."""
        return _decoded(self.broker.pending(queue or self.config.default_queue, limit))

    def delayed_tasks(self, limit: int = 1000) -> list[Signature]:
        """Up to ``limit`` delayed tasks of every queue, soonest first (Go Machinery's
        ``GetDelayedTasks``); the same brokers as ``pending_tasks`` can list them."""
        return _decoded([body for _queue, _due, body in self.broker.delayed(limit)])

    def result(self, task_uuid: str) -> AsyncResult:
        """A handle on the task ``task_uuid`` sent earlier (from any process)."""
        return AsyncResult(task_uuid, self.backend)

    # -- workers ------------------------------------------------------------------------------

    def worker(
        self, *, concurrency: int | None = None, queues: Sequence[str] | None = None, prefetch: int | None = None
    ) -> Worker:
        """A Worker for this app; ``launch()`` runs it."""
        self._check_revocations()
        return Worker(self, concurrency=concurrency, queues=queues, prefetch=prefetch)

    def _check_revocations(self) -> None:
        """Register the hook that skips revoked tasks, once, when the backend keeps revocations."""
        backend = self.backend
        with self._lock:
            if self._revoker is None and control_store(backend) is not None:
                assert backend is not None
                self._revoker = Revoker(backend)
                self.hooks.add(self._revoker)

    def revoke(self, task_uuid: str, *, reason: str = "revoked", expires_in: float = DEFAULT_EXPIRY) -> None:
        """Make sure task ``task_uuid`` does not run (if it has not started): every worker skips it
        and records ``REVOKED``; its callbacks are not sent; a chord containing it fails. Kept in the
        result store for ``expires_in`` seconds, so it survives worker restarts."""
        revoke(self.backend, task_uuid, reason, expires_in)


def _decoded(bodies: Sequence[bytes]) -> list[Signature]:
    out = []
    for body in bodies:
        try:
            out.append(decode(body))
        except DecodeError:
            continue
    return out


def init_app(config: Config | None = None) -> App:
    """An App for ``config`` (the same as ``App(config)``)."""
    return App(config)
