"""OpenTelemetry tracing, built on the hooks: a ``publish`` span for every task sent and a ``run``
span for every run, joined into one trace across chains, callbacks, retries and chords by the W3C
trace context (``traceparent``, ``tracestate``) carried in each message's ``Headers`` (where Go
Machinery carries its trace context too, so a trace can cross Go and Python workers).

Needs the ``otel`` extra (``pip install 'machinery[otel]'``: opentelemetry-api and -sdk). Spans go
to the tracer provider you configure (``opentelemetry.trace.set_tracer_provider``, or the one you
pass); with none configured they cost next to nothing.
"""

from __future__ import annotations

import threading
from contextvars import Token
from dataclasses import dataclass

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(f"machinery.tracing needs the otel extra ({exc}): pip install 'machinery[otel]'") from exc
from opentelemetry.propagators.textmap import TextMapPropagator, default_setter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from machinery.app import App
from machinery.hooks import Hook, Outcome, TaskCall
from machinery.signature import Signature
from machinery.states import TaskState

__all__ = ["TRACE_HEADERS", "TracingHook", "enable_tracing"]

#: The headers the W3C trace context uses.
TRACE_HEADERS = ("traceparent", "tracestate")


@dataclass(slots=True)
class _Run:
    span: Span
    token: Token[otel_context.Context]


class TracingHook(Hook):
    """Opens a PRODUCER span ``<task> publish`` for each task sent (a child of whatever span is
    current: your request's, or the run that sends a callback) and writes its context into the
    signature's headers; opens a CONSUMER span ``<task> run`` for each run, a child of the context
    the message carries, current while the task runs and ended with the outcome."""

    def __init__(self, tracer_provider: TracerProvider | None = None,
                 propagator: TextMapPropagator | None = None) -> None:
        self._tracer = trace.get_tracer("machinery", tracer_provider=tracer_provider)
        self._propagator = propagator if propagator is not None else TraceContextTextMapPropagator()
        self._local = threading.local()

    def __repr__(self) -> str:
        return "<TracingHook>"

    def _runs(self) -> dict[str, _Run]:
        runs: dict[str, _Run] | None = getattr(self._local, "runs", None)
        if runs is None:
            runs = self._local.runs = {}
        return runs

    def before_publish(self, signature: Signature) -> Signature | None:
        attributes = {
            "messaging.system": "machinery",
            "messaging.operation": "publish",
            "messaging.destination.name": signature.routing_key,
            "messaging.message.id": signature.uuid,
            "machinery.task.name": signature.name,
        }
        with self._tracer.start_as_current_span(f"{signature.name} publish", kind=SpanKind.PRODUCER,
                                                attributes=attributes):
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier, setter=default_setter)
        if not carrier:
            return None
        headers = {k: v for k, v in signature.headers.items() if k not in TRACE_HEADERS}
        return signature.replace(headers={**headers, **carrier})

    def before_run(self, call: TaskCall) -> None:
        sig = call.signature
        carrier = {k: v for k in TRACE_HEADERS if isinstance(v := sig.headers.get(k), str)}
        parent = self._propagator.extract(carrier) if carrier else otel_context.Context()
        span = self._tracer.start_span(
            f"{sig.name} run",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "machinery",
                "messaging.operation": "process",
                "messaging.destination.name": call.queue,
                "messaging.message.id": sig.uuid,
                "machinery.task.name": sig.name,
                "machinery.delivery_count": call.delivery_count,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        self._runs()[sig.uuid] = _Run(span, token)

    def after_run(self, call: TaskCall, outcome: Outcome) -> None:
        run = self._runs().pop(call.signature.uuid, None)
        if run is None:
            return  # an earlier hook decided before this one's before_run was asked
        span = run.span
        span.set_attribute("machinery.task.state", outcome.state.value)
        if outcome.state is TaskState.FAILURE:
            span.set_status(Status(StatusCode.ERROR, outcome.error))
        elif outcome.state is TaskState.RETRY:
            span.add_event("retry", {"error": outcome.error})
        elif outcome.error:
            span.set_attribute("machinery.task.reason", outcome.error)
        span.end()
        otel_context.detach(run.token)


def enable_tracing(app: App, tracer_provider: TracerProvider | None = None) -> TracingHook:
    """Trace ``app``'s sends and runs (register this in every process that sends or runs tasks)."""
    hook = TracingHook(tracer_provider)
    app.hooks.add(hook)
    return hook
