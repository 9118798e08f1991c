"""How a publish's frames are built without pika's per-call objects: byte for byte what pika sends."""

from __future__ import annotations

import pytest
from pika import frame
from pika.spec import Basic, BasicProperties

from machinery.brokers.amqp_publish_frames import PERSISTENT, PublishFrames


def pika_frames(channel: int, exchange: str, key: str, body: bytes, props: BasicProperties, *,
                body_max: int = 4096) -> bytes:
    """The frames pika's ``Connection._send_message`` emits for a mandatory Basic.Publish."""
    parts = [
        frame.Method(channel, Basic.Publish(exchange=exchange, routing_key=key, mandatory=True)).marshal(),
        frame.Header(channel, len(body), props).marshal(),
    ]
    parts += [frame.Body(channel, body[i:i + body_max]).marshal() for i in range(0, len(body), body_max)]
    return b"".join(parts)


def test_a_plain_persistent_publish_matches_pika() -> None:
    frames = PublishFrames(1, 4096)
    assert frames.build("ex", "key", b"hello", PERSISTENT) == pika_frames(1, "ex", "key", b"hello", PERSISTENT)


def test_a_cached_method_frame_is_reused_unchanged() -> None:
    frames = PublishFrames(3, 4096)
    first = frames.build("ex", "key", b"one", PERSISTENT)
    assert frames.build("ex", "key", b"two", PERSISTENT) == pika_frames(3, "ex", "key", b"two", PERSISTENT)
    assert first == pika_frames(3, "ex", "key", b"one", PERSISTENT)


def test_properties_with_priority_and_headers_match_pika() -> None:
    props = BasicProperties(delivery_mode=2, priority=7, headers={"reason": "bad", "x-deliveries": 3})
    frames = PublishFrames(1, 4096)
    assert frames.build("", "q.dead", b"{}", props) == pika_frames(1, "", "q.dead", b"{}", props)


def test_a_body_larger_than_a_frame_is_split_as_pika_splits_it() -> None:
    body = bytes(range(256)) * 5
    frames = PublishFrames(1, 100)
    assert frames.build("ex", "k", body, PERSISTENT) == pika_frames(1, "ex", "k", body, PERSISTENT, body_max=100)


def test_an_empty_body_has_no_body_frame() -> None:
    frames = PublishFrames(1, 4096)
    assert frames.build("ex", "k", b"", PERSISTENT) == pika_frames(1, "ex", "k", b"", PERSISTENT)


def test_a_routing_key_too_long_for_amqp_raises_as_pika_does() -> None:
    with pytest.raises(Exception) as ours:
        PublishFrames(1, 4096).build("ex", "k" * 300, b"x", PERSISTENT)
    with pytest.raises(Exception) as theirs:
        pika_frames(1, "ex", "k" * 300, b"x", PERSISTENT)
    assert type(ours.value) is type(theirs.value)


@pytest.mark.parametrize(
    ("channel", "tag", "multiple"), [(1, 1, False), (3, 2**40 + 7, True), (65535, 2**64 - 1, False)]
)
def test_an_ack_frame_is_the_bytes_pika_would_send(channel: int, tag: int, multiple: bool) -> None:
    from pika import frame
    from pika.spec import Basic

    from machinery.brokers.amqp_publish_frames import ack_frame

    assert ack_frame(channel, tag, multiple) == frame.Method(channel, Basic.Ack(tag, multiple)).marshal()
