"""A Python worker in Go mode runs what a Go Machinery v1 producer sends on RabbitMQ: messages
written by Go's ``json.Marshal`` (the Go program) and published exactly as Go's AMQP broker
publishes them (the task exchange, the binding key as routing key, ``application/json``, persistent,
the signature's headers as AMQP headers; delayed ones through Go's ``delay.<ms>.<exchange>.<key>``
queues). Results are read through this project's result backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pika
import pytest

from machinery import App, Config, Signature, TaskFailed
from machinery._speedups import decode
from machinery.brokers import amqp_topology
from machinery.brokers.amqp_delays import go_delay_queue, go_delay_steps
from machinery.routing import Router
from tests.support.amqp import amqp_config
from tests.support.gointerop import GoProgram
from tests.support.waiting import TIMEOUT
from tests.support.workers import running


@pytest.fixture
def config(tmp_path: Path) -> Config:
    base = amqp_config(tmp_path)
    # Go's usual layout: the queue is bound with a binding key that is not its name.
    return base.replace(binding_key=f"{base.default_queue}-key", wire_format="go")


@pytest.fixture
def app(config: Config) -> Iterator[App]:
    with App(config) as app:
        app.broker.declare([config.default_queue])  # as a Go or Python worker started earlier would
        yield app


class GoProducer:
    """Publishes as Go Machinery v1's AMQP broker does (``Publish`` and ``delay``)."""

    def __init__(self, config: Config, go: GoProgram) -> None:
        self.config = config
        self.go = go

    def send(self, signature: dict[str, Any], *, delay_ms: int = 0) -> None:
        signature.setdefault("RoutingKey", self.config.binding_key)  # Go's AdjustRoutingKey on a direct exchange
        [body] = self.go.encode([signature])
        key = signature["RoutingKey"]
        props = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                     headers=signature.get("Headers"), priority=signature.get("Priority", 0))
        connection = pika.BlockingConnection(pika.URLParameters(self.config.broker_url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            exchange = self.config.exchange
            channel.exchange_declare(exchange, self.config.exchange_type, durable=True)
            if delay_ms:
                name = go_delay_queue(exchange, key, delay_ms)
                channel.queue_declare(name, durable=True, arguments={
                    "x-dead-letter-exchange": exchange, "x-dead-letter-routing-key": key,
                    "x-message-ttl": delay_ms, "x-expires": delay_ms * 2})
                channel.queue_bind(name, exchange, name)
                key = name
            channel.basic_publish(exchange, key, body, props, mandatory=True)
        finally:
            connection.close()


@pytest.fixture
def producer(config: Config, go: GoProgram) -> GoProducer:
    return GoProducer(config, go)


def _arg(type_name: str, value: object) -> dict[str, object]:
    return {"Name": "", "Type": type_name, "Value": value}


def _task(uuid: str, name: str, *args: dict[str, object], **fields: object) -> dict[str, Any]:
    return {"UUID": uuid, "Name": name, "Args": list(args), **fields}


def _uuid(prefix: str) -> str:
    return f"task_{prefix}_{time.monotonic_ns()}"


def test_every_go_argument_type_reaches_the_task_as_its_python_value(app: App, producer: GoProducer) -> None:
    @app.task(name="describe")
    def describe(*args: object) -> list[str]:
        return [f"{type(a).__name__}:{a!r}" for a in args]

    uuid = _uuid("types")
    producer.send(_task(uuid, "describe", _arg("bool", True), _arg("int", -3), _arg("int64", 2**62),
                        _arg("uint8", 255), _arg("uint64", 2**64 - 1), _arg("float32", 0.5),
                        _arg("float64", 1e300), _arg("string", "héllo"), _arg("[]byte", "AP9h"),
                        _arg("[]uint8", "AQI="), _arg("[]int64", [1, 2]), _arg("[]string", ["a"]),
                        _arg("[]float64", [1.5]), _arg("[]bool", [False])))
    with running(app):
        assert app.result(uuid).get(timeout=TIMEOUT) == [
            "bool:True", "int:-3", f"int:{2**62}", "int:255", f"int:{2**64 - 1}", "float:0.5",
            "float:1e+300", "str:'héllo'", "bytes:b'\\x00\\xffa'", "bytes:b'\\x01\\x02'", "tuple:(1, 2)",
            "tuple:('a',)", "tuple:(1.5,)", "tuple:(False,)",
        ]


def test_a_go_chain_computes_what_go_computes_results_appended(app: App, producer: GoProducer) -> None:
    @app.task(name="sub")
    def sub(a: float, b: float) -> float:
        return a - b

    last = _uuid("step3")
    step3 = _task(last, "sub", _arg("int64", 1000))
    step2 = _task(_uuid("step2"), "sub", _arg("int64", 100), OnSuccess=[step3])
    producer.send(_task(_uuid("step1"), "sub", _arg("int64", 10), _arg("int64", 3), OnSuccess=[step2]))
    with running(app):
        # Go appends: sub(10, 3) = 7; sub(100, 7) = 93; sub(1000, 93) = 907.
        assert app.result(last).get(timeout=TIMEOUT) == 907


def test_an_immutable_go_step_does_not_pass_its_result_on(app: App, producer: GoProducer) -> None:
    @app.task(name="count")
    def count(*args: object) -> int:
        return len(args)

    last = _uuid("after")
    producer.send(_task(_uuid("first"), "count", _arg("string", "x"), Immutable=True,
                        OnSuccess=[_task(last, "count", _arg("string", "own"))]))
    with running(app):
        assert app.result(last).get(timeout=TIMEOUT) == 1


def test_a_go_error_callback_gets_the_error_text_first(app: App, producer: GoProducer) -> None:
    @app.task(name="explode")
    def explode(x: int) -> None:
        raise ValueError(f"exploded on {x}")

    @app.task(name="report")
    def report(error: str, where: str) -> str:
        return f"{where}: {error}"

    failed, reported = _uuid("fail"), _uuid("report")
    producer.send(_task(failed, "explode", _arg("int64", 4),
                        OnError=[_task(reported, "report", _arg("string", "go"))]))
    with running(app):
        assert app.result(reported).get(timeout=TIMEOUT) == "go: exploded on 4"
        with pytest.raises(TaskFailed, match="exploded on 4"):
            app.result(failed).get(timeout=TIMEOUT)


def test_a_go_task_retried_here_comes_back_to_its_queue_although_its_routing_key_is_the_binding_key(
    app: App, producer: GoProducer, config: Config
) -> None:
    tries: list[float] = []

    @app.task(name="flaky")
    def flaky(x: int) -> int:
        tries.append(time.time())
        if len(tries) < 3:
            raise RuntimeError("not yet")
        return x

    uuid = _uuid("flaky")
    producer.send(_task(uuid, "flaky", _arg("int64", 5), RetryCount=3, RoutingKey=config.binding_key))
    with running(app):
        assert app.result(uuid).get(timeout=TIMEOUT) == 5
    # Go's schedule: retry timeouts 1 s, then 2 s (Fibonacci).
    assert tries[1] - tries[0] >= 1.0 and tries[2] - tries[1] >= 2.0


def test_a_go_delayed_task_runs_here_not_before_its_eta(app: App, producer: GoProducer) -> None:
    ran: list[float] = []

    @app.task(name="stamp")
    def stamp() -> bool:
        ran.append(time.time())
        return True

    uuid = _uuid("eta")
    eta = datetime.now(timezone.utc) + timedelta(milliseconds=800)
    producer.send(_task(uuid, "stamp", ETA=eta.isoformat().replace("+00:00", "Z")), delay_ms=800)
    with running(app):
        assert app.result(uuid).get(timeout=TIMEOUT) is True
    assert ran[0] >= eta.timestamp()


def test_a_delayed_task_sent_here_in_go_mode_reaches_no_consumer_before_its_eta(app: App, config: Config) -> None:
    """200 delays, received by a plain consumer of the queue that runs whatever arrives (as Go's
    worker does, which never looks at ETA): none arrives early."""
    received: dict[str, float] = {}
    ready = threading.Event()

    def consume() -> None:
        connection = pika.BlockingConnection(pika.URLParameters(config.broker_url))
        channel = connection.channel()
        channel.basic_qos(prefetch_count=500)

        def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
            received[decode(body).uuid] = time.time()
            ch.basic_ack(method.delivery_tag)

        channel.basic_consume(config.default_queue, on_message)
        ready.set()
        deadline = time.monotonic() + 60
        while len(received) < 200 and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        connection.close()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert ready.wait(TIMEOUT)
    etas: dict[str, float] = {}
    for i in range(200):
        sig = Signature("anything", [i]).countdown(0.02 + (i % 40) * 0.037)
        assert sig.eta is not None
        etas[sig.uuid] = sig.eta.timestamp()
        app.send_task(sig)
    thread.join(90)
    assert len(received) == 200
    early = {u: etas[u] - t for u, t in received.items() if t < etas[u]}
    assert early == {}


def test_a_delayed_message_that_reaches_its_delay_queue_late_is_not_lost_with_it(
    app: App, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delay queue expires ``2 * ms`` after its last declare even with a message inside. Here the
    publish reaches the 200 ms queue 300 ms after its declare (as on a loaded machine): the message
    would be due after the queue expired, and vanish with it, were the queue not declared again
    once RabbitMQ confirmed the message."""
    broker: Any = app.broker
    declaring = broker.connection.declaring
    declare = declaring.call
    delay_queue_steps: list[Any] = []

    def steps_kept(exchange: str, routing_key: str, ms: int) -> Any:
        delay_queue_steps.append(go_delay_steps(exchange, routing_key, ms))
        return delay_queue_steps[-1]

    def slow_after_delay_queue(steps: Any) -> Any:
        replies = declare(steps)
        if any(steps is kept for kept in delay_queue_steps):
            time.sleep(0.3)
        return replies

    monkeypatch.setattr(amqp_topology, "go_delay_steps", steps_kept)
    monkeypatch.setattr(declaring, "call", slow_after_delay_queue)
    sig = Signature("anything", [1]).countdown(0.2)
    app.send_task(sig)
    connection = pika.BlockingConnection(pika.URLParameters(config.broker_url))
    try:
        channel = connection.channel()
        deadline = time.monotonic() + 5
        body = None
        while body is None and time.monotonic() < deadline:
            _method, _props, body = channel.basic_get(config.default_queue, auto_ack=True)
            if body is None:
                time.sleep(0.05)
    finally:
        connection.close()
    assert body is not None, "the delayed message was lost with its delay queue"
    assert decode(body).uuid == sig.uuid


def test_go_and_python_declare_the_same_delay_queue_alike(app: App, producer: GoProducer, config: Config) -> None:
    """Go declared ``delay.800.<exchange>.<key>`` first; Python's publish with the same delay uses
    the same queue with equal arguments (else RabbitMQ would refuse the declare), and both arrive."""
    ran: list[str] = []

    @app.task(name="mark")
    def mark(who: str) -> str:
        ran.append(who)
        return who

    go_uuid = _uuid("go")
    producer.send(_task(go_uuid, "mark", _arg("string", "go")), delay_ms=800)
    sig = Signature("mark", ["python"])
    app.broker.publish(config.default_queue, Router(config).message(sig).body, delay=0.8)
    with running(app):
        assert app.result(go_uuid).get(timeout=TIMEOUT) == "go"
        assert app.result(sig.uuid).get(timeout=TIMEOUT) == "python"
