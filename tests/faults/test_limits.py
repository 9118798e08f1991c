"""Issue: one message with 100,000 OnSuccess callbacks made 100,000 publishes on one thread (8 s,
RSS 35 -> 335 MiB); nothing bounded fan-out or message size. Now ``max_fanout`` and
``max_message_bytes`` refuse such messages when sent and dead-letter them when received."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from machinery import Config, ConfigError, LimitExceeded, Signature, TaskFailed, TaskState, chord, group
from machinery.brokers.base import REASON_HEADER, dead_letter_queue
from machinery.limits import DEFAULT_MAX_FANOUT, DEFAULT_MAX_MESSAGE_BYTES
from machinery.routing import Router
from tests.faults.support import T, fault_app_on
from tests.support.waiting import eventually
from tests.support.workers import running


def dead_reasons(app_config: Config, broker: object) -> list[str]:
    from machinery.brokers.base import Broker

    assert isinstance(broker, Broker)
    deliveries = broker.fetch([dead_letter_queue(app_config.default_queue)], 100, 0.1)
    return [d.headers.get(REASON_HEADER, "") for d in deliveries]


def test_the_defaults_are_sane() -> None:
    config = Config()
    assert config.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES == 16 * 1024 * 1024
    assert config.max_fanout == DEFAULT_MAX_FANOUT == 10_000
    with pytest.raises(ConfigError, match="max_fanout"):
        Config(max_fanout=0)
    with pytest.raises(ConfigError, match="max_message_bytes"):
        Config(max_message_bytes=10)


def unchecked(config: Config, sig: Signature) -> bytes:
    """``sig``'s message body as a producer without the limits would send it."""
    return Router(config.replace(max_fanout=10**9, max_message_bytes=2**40)).message(sig).body


def hundred_thousand_callbacks() -> Signature:
    return Signature("add", [1, 1], on_success=[Signature("echo", [i]) for i in range(100_000)])


@pytest.mark.slow
def test_a_message_with_100000_callbacks_is_refused_when_sent(tmp_path: Path) -> None:
    app = fault_app_on(tmp_path)
    with pytest.raises(LimitExceeded, match=r"100000 messages.*max_fanout=10000"):
        app.send_task(hundred_thousand_callbacks())
    assert app.broker.depth(app.config.default_queue).ready == 0
    app.close()


@pytest.mark.slow
def test_a_message_with_100000_callbacks_is_dead_lettered_when_received(tmp_path: Path) -> None:
    # 100,000 callbacks take ~27 MB, past the default max_message_bytes (which would refuse it
    # first, unread): raised here so that the fan-out bound is the one that stops it.
    app = fault_app_on(tmp_path, max_message_bytes=64 * 1024 * 1024)
    sig = hundred_thousand_callbacks()
    body = unchecked(app.config, sig)
    assert len(body) > DEFAULT_MAX_MESSAGE_BYTES
    app.broker.publish(app.config.default_queue, body)
    with running(app, concurrency=2):
        assert eventually(lambda: app.broker.depth(app.config.default_queue).dead == 1, timeout=T)
    with pytest.raises(TaskFailed, match="max_fanout"):
        app.result(sig.uuid).get(timeout=T)
    depth = app.broker.depth(app.config.default_queue)
    assert (depth.ready, depth.in_flight, depth.dead) == (0, 0, 1)  # not one callback was sent
    assert "max_fanout=10000" in dead_reasons(app.config, app.broker)[0]
    app.close()


def test_nested_callbacks_groups_and_chords_are_held_to_max_fanout(tmp_path: Path) -> None:
    app = fault_app_on(tmp_path, max_fanout=3)
    deep = Signature("add", [1, 1], on_success=[Signature("add", [2], on_error=[Signature("echo", [])] * 4)])
    with pytest.raises(LimitExceeded):
        app.send_task(deep)
    with pytest.raises(LimitExceeded, match="group of 4 members"):
        app.send_task(group(*[Signature("add", [i, 1]) for i in range(4)]))
    with pytest.raises(LimitExceeded, match="group of 4 members"):
        app.send_task(chord([Signature("add", [i, 1]) for i in range(4)], Signature("echo", [])))
    with running(app, concurrency=1):
        assert app.send_task(group(*[Signature("add", [i, 1]) for i in range(3)])).get(timeout=T) == [1.0, 2.0, 3.0]
    assert app.broker.depth(app.config.default_queue).dead == 0
    app.close()


def test_a_message_over_max_message_bytes_is_refused_and_dead_lettered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = fault_app_on(tmp_path, max_message_bytes=4096)
    big = Signature("echo", ["x" * 5000])
    with pytest.raises(LimitExceeded, match=r"task echo of \d+ bytes is larger than max_message_bytes=4096"):
        app.send_task(big)
    app.broker.publish(app.config.default_queue, unchecked(app.config, big))
    with caplog.at_level(logging.ERROR, logger="machinery"), running(app, concurrency=1):
        assert eventually(lambda: app.broker.depth(app.config.default_queue).dead == 1, timeout=T)
    assert "larger than max_message_bytes=4096" in caplog.text
    assert "larger than max_message_bytes=4096" in dead_reasons(app.config, app.broker)[0]
    assert app.result(big.uuid).state is TaskState.PENDING  # its body was never read
    app.close()


def test_a_follow_up_over_a_limit_fails_the_task_instead_of_looping(tmp_path: Path) -> None:
    """A callback that becomes too large once the result is prepended: the task fails for good."""
    app = fault_app_on(tmp_path, max_message_bytes=4096)
    callback = Signature("echo", [])
    sig = Signature("repeat", ["y", 5000], on_success=[callback])
    with running(app, concurrency=1):
        with pytest.raises(TaskFailed, match=r"LimitExceeded.*max_message_bytes=4096"):
            app.send_task(sig).get(timeout=T)
        assert app.send_task(Signature("add", [1, 1])).get(timeout=T) == 2
    assert app.result(callback.uuid).state is TaskState.PENDING
    depth = app.broker.depth(app.config.default_queue)
    assert (depth.ready, depth.in_flight, depth.dead) == (0, 0, 0)
    app.close()


@pytest.mark.parametrize("wire_format", ["machinery", "go"])
def test_a_body_too_small_to_pass_max_fanout_cannot_hold_such_a_signature(wire_format: str) -> None:
    """The worker walks a received signature for ``max_fanout`` only when its body could hold one
    past it (``fanout_possible``): every body whose signatures fan out to n is at least 2n bytes."""
    from machinery.limits import fanout, fanout_possible

    router = Router(Config(wire_format=wire_format, max_fanout=10**6))
    smallest = Signature("a", [], uuid="u")
    for n in (1, 2, 3, 10, 57, 400):
        for sig in (smallest.replace(on_success=[smallest] * n),
                    smallest.replace(on_error=[smallest] * n),
                    smallest.replace(on_success=[smallest.replace(on_success=[smallest] * n)])):
            body = router.message(sig).body
            deepest = max(fanout(s) for s in sig.walk())
            assert fanout_possible(len(body), deepest), (n, len(body))
            assert not fanout_possible(len(body), len(body) // 2 + 1)
