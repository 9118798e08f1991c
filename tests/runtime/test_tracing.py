"""OpenTelemetry: publish and run spans, one trace across a chain, callbacks and retries, carried
by the W3C ``traceparent`` in message headers; recorded by the SDK's in-memory exporter."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from machinery import App, Retry, Signature, TaskFailed, chain
from machinery.tracing import enable_tracing
from tests.support.waiting import TIMEOUT, eventually
from tests.support.workers import running


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


def traced(app: App, spans: tuple[TracerProvider, InMemorySpanExporter]) -> InMemorySpanExporter:
    """Register this file's tasks on ``app`` and trace it into ``spans``; the exporter."""
    register(app)
    enable_tracing(app, spans[0])
    return spans[1]


def register(app: App) -> None:
    @app.task
    def add(a: float, b: float) -> float:
        return a + b

    @app.task
    def boom(x: int) -> None:
        raise ValueError(f"boom {x}")

    @app.task
    def noted(error: str) -> str:
        return error

    @app.task
    def flaky() -> None:
        raise Retry(countdown=0.01)


def test_a_chain_is_one_trace_from_the_caller_s_span(
    app: App, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    exporter = traced(app, spans)
    tracer = spans[0].get_tracer("test")
    with running(app, concurrency=2):
        with tracer.start_as_current_span("request") as request:
            result = app.send_task(chain(Signature("add", [1, 1]), Signature("add", [5]), Signature("add", [10])))
        assert result.get(timeout=TIMEOUT) == 17
        assert eventually(lambda: len(by_name(exporter.get_finished_spans(), "add run")) == 3)
    finished = exporter.get_finished_spans()
    publishes = by_name(finished, "add publish")
    runs = by_name(finished, "add run")
    assert len(publishes) == 3
    assert {trace_id(s) for s in finished} == {request.get_span_context().trace_id}
    # request -> publish 1 -> run 1 -> publish 2 -> run 2 -> publish 3 -> run 3
    parent = request.get_span_context().span_id
    for step in result.steps:
        [publish] = [s for s in publishes if s.attributes and s.attributes["messaging.message.id"] == step.task_uuid]
        [run] = [s for s in runs if s.attributes and s.attributes["messaging.message.id"] == step.task_uuid]
        assert publish.kind is SpanKind.PRODUCER and run.kind is SpanKind.CONSUMER
        assert parent_id(publish) == parent
        assert parent_id(run) == span_id(publish)
        assert run.attributes is not None and run.attributes["machinery.task.state"] == "SUCCESS"
        assert run.attributes["messaging.destination.name"] == app.config.default_queue
        parent = span_id(run)


def test_failures_error_callbacks_and_retries_stay_in_the_trace(
    app: App, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    exporter = traced(app, spans)
    with running(app, concurrency=1):
        failing = app.send_task(Signature("boom", [3], on_error=[Signature("noted", [])]))
        with pytest.raises(TaskFailed):
            failing.get(timeout=TIMEOUT)
        with pytest.raises(TaskFailed):
            app.send_task(Signature("flaky", [], retry_count=1)).get(timeout=TIMEOUT)
        assert eventually(lambda: len(by_name(exporter.get_finished_spans(), "noted run")) == 1)
    finished = exporter.get_finished_spans()
    [boom_run] = by_name(finished, "boom run")
    assert boom_run.status.status_code is StatusCode.ERROR and boom_run.status.description == "boom 3"
    [noted_publish] = by_name(finished, "noted publish")
    [noted_run] = by_name(finished, "noted run")
    assert parent_id(noted_publish) == span_id(boom_run)
    assert parent_id(noted_run) == span_id(noted_publish)
    assert trace_id(noted_run) == trace_id(boom_run)
    first, second = sorted(by_name(finished, "flaky run"), key=lambda s: s.start_time or 0)
    assert first.attributes is not None and first.attributes["machinery.task.state"] == "RETRY"
    assert [e.name for e in first.events] == ["retry"]
    retry_publish = [s for s in by_name(finished, "flaky publish") if parent_id(s) == span_id(first)]
    assert len(retry_publish) == 1
    assert parent_id(second) == span_id(retry_publish[0])
    assert second.status.status_code is StatusCode.ERROR


def test_a_message_from_another_producer_joins_its_trace(
    app: App, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """A message written by hand, as a Go Machinery producer writes it: Headers carry the
    ``traceparent``; the run span continues that trace under that span."""
    exporter = traced(app, spans)
    trace_hex, span_hex = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    body = json.dumps({
        "UUID": "task_from_go", "Name": "add", "Args": [{"Name": "", "Type": "int64", "Value": 2},
                                                        {"Name": "", "Type": "int64", "Value": 3}],
        "Headers": {"traceparent": f"00-{trace_hex}-{span_hex}-01"},
    }).encode()
    queue = app.config.default_queue
    app.broker.declare([queue])
    app.broker.publish(queue, body)
    with running(app, concurrency=1):
        assert app.result("task_from_go").get(timeout=TIMEOUT) == 5
        assert eventually(lambda: len(by_name(exporter.get_finished_spans(), "add run")) == 1)
    [run] = by_name(exporter.get_finished_spans(), "add run")
    assert trace_id(run) == int(trace_hex, 16)
    assert parent_id(run) == int(span_hex, 16)
    assert run.parent is not None and run.parent.is_remote


def test_without_a_current_span_each_send_starts_a_trace(
    app: App, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    exporter = traced(app, spans)
    sent = [Signature("add", [i, i]) for i in range(2)]
    with running(app, concurrency=1):
        for sig in sent:
            app.send_task(sig).get(timeout=TIMEOUT)
        assert eventually(lambda: len(by_name(exporter.get_finished_spans(), "add run")) == 2)
    publishes = by_name(exporter.get_finished_spans(), "add publish")
    assert all(s.parent is None for s in publishes)
    assert len({trace_id(s) for s in publishes}) == 2
