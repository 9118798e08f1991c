"""The App: configuration, registered tasks, the broker and the result backend, and sending."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, overload

from machinery._speedups import decode
from machinery.backends import open_backend
from machinery.backends.base import ResultBackend
from machinery.brokers import open_broker
from machinery.brokers.base import Broker, OutgoingMessage
from machinery.config import Config, load_config
from machinery.errors import ConfigError, DecodeError
from machinery.limits import check_members
from machinery.registry import Registry
from machinery.result import AsyncResult, ChainResult, ChordResult, GroupResult
from machinery.routing import Router
from machinery.signature import Signature
from machinery.task import Task
from machinery.task_function import TaskDecorator, TaskFunction
from machinery.urls import masked_url
from machinery.worker import Worker
from machinery.workflows import Chain, Chord, Group, NoResult, TypedSignature

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

    def close(self) -> None:
        """Close the broker and the result backend (they reopen on next use)."""
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
    ) -> Task:
        """Register ``task`` (an object with ``run(args)`` or a plain function) as ``name``, with
        default time limits in seconds (see ``Signature.with_time_limits``)."""
        return self.registry.register(
            name, task, replace=replace, time_limit=time_limit, soft_time_limit=soft_time_limit
        )

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
    ) -> TaskDecorator: ...

    def task(
        self,
        function: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        replace: bool = False,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
    ) -> Any:
        """Register a function as a task, named ``name`` or the function's ``__name__``:
        ``@app.task`` or ``@app.task(name="add", time_limit=60)``. The function stays callable, and becomes a
        ``TaskFunction[P, R]``: ``.s``, ``.si``, ``.partial`` and ``.delay`` are checked against its
        parameters, and a worker checks and converts the args against its annotations."""

        def register(fn: Callable[..., Any]) -> TaskFunction[..., Any]:
            task_name = name or fn.__name__
            self.registry.register(
                task_name, fn, replace=replace, time_limit=time_limit, soft_time_limit=soft_time_limit
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
            routed = self._routed = (self.config, Router(self.config))
        return routed[1]

    def _declare(self, queues: Sequence[str]) -> None:
        new = [q for q in queues if q not in self._declared]
        if new:
            self.broker.declare(new)
            self._declared.update(new)

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
            self._publish([self._router.message(sig)])
            return AsyncResult(sig.uuid, self.backend, name=sig.name, result_type=work.result_type)
        if isinstance(work, Signature):
            self._publish([self._router.message(work)])
            return AsyncResult(work.uuid, self.backend, name=work.name)
        if isinstance(work, Chain):
            self._publish([self._router.message(work.head)])
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
        router = self._router
        messages = [router.message(s) for s in grp.tasks]
        if backend is not None:
            backend.group_start(grp.group_uuid, [s.uuid for s in grp.tasks])
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
        for work in works:
            if isinstance(work, Chain):
                messages.append(self._router.message(work.head))
                results.append(self._chain_result(work))
            elif isinstance(work, TypedSignature):
                sig = work.signature
                messages.append(self._router.message(sig))
                results.append(AsyncResult(sig.uuid, backend, name=sig.name, result_type=work.result_type))
            elif isinstance(work, Signature):
                messages.append(self._router.message(work))
                results.append(AsyncResult(work.uuid, backend, name=work.name))
            else:
                raise TypeError(f"send_tasks() takes Signatures and Chains, got {type(work).__name__}")
        if messages:
            self._publish(messages)
        return results

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
        return Worker(self, concurrency=concurrency, queues=queues, prefetch=prefetch)


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
