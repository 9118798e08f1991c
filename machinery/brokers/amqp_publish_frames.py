"""The wire bytes of a publish (method, content header and body frames) and of an ack, built
without pika's per-call objects: the fast path (``_pika_fastpath``) sends them in place of
``Channel.basic_publish`` and ``Channel.basic_ack``.

Only pika's public frame and property encoders are used here.
"""

from __future__ import annotations

import struct

from pika import frame
from pika.spec import Basic, BasicProperties

__all__ = ["CONTENT_TYPE", "PERSISTENT", "PublishFrames", "ack_frame"]

#: Every message is JSON and says so, as Go Machinery's messages do.
CONTENT_TYPE = "application/json"
#: The properties of a plain persistent message; ``PublishFrames`` encodes them once.
PERSISTENT = BasicProperties(delivery_mode=2, content_type=CONTENT_TYPE)

_FRAME_HEAD = struct.Struct(">BHI")
_CONTENT_HEAD = struct.Struct(">HxxQ")
_FRAME_END = b"\xce"
_FRAME_HEADER = 2
_FRAME_BODY = 3
_MAX_CACHED = 1024
#: A Basic.Ack method frame: type 1, channel, payload size 13, class 60, method 80, delivery tag,
#: the ``multiple`` bit, frame end.
_ACK = struct.Struct(">BHIHHQBB")


def ack_frame(channel_number: int, delivery_tag: int, multiple: bool) -> bytes:
    """The wire bytes of ``Basic.Ack(delivery_tag, multiple)`` on channel ``channel_number``."""
    return _ACK.pack(1, channel_number, 13, 60, 80, delivery_tag, 1 if multiple else 0, 0xCE)


class PublishFrames:
    """The wire bytes of a mandatory Basic.Publish with its content header and body frames, built
    without pika's per-call objects: the method frame is cached per exchange and routing key, the
    encoded ``PERSISTENT`` properties once; other properties are encoded each time."""

    def __init__(self, channel_number: int, body_max: int) -> None:
        self._channel = channel_number
        self._body_max = body_max
        self._methods: dict[tuple[str, str], bytes] = {}
        self._persistent = b"".join(PERSISTENT.encode())

    def build(self, exchange: str, routing_key: str, body: bytes, properties: BasicProperties) -> bytes:
        """All frames of one publish, joined; raises as pika would for a field it cannot encode."""
        key = (exchange, routing_key)
        method = self._methods.get(key)
        if method is None:
            publish = Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True)
            method = frame.Method(self._channel, publish).marshal()
            if len(self._methods) >= _MAX_CACHED:
                self._methods.clear()
            self._methods[key] = method
        props = self._persistent if properties is PERSISTENT else b"".join(properties.encode())
        channel = self._channel
        size = len(body)
        header = _CONTENT_HEAD.pack(BasicProperties.INDEX, size) + props
        parts = [method, _FRAME_HEAD.pack(_FRAME_HEADER, channel, len(header)), header, _FRAME_END]
        step = self._body_max
        for start in range(0, size, step):
            chunk = body[start:start + step]
            parts += (_FRAME_HEAD.pack(_FRAME_BODY, channel, len(chunk)), chunk, _FRAME_END)
        return b"".join(parts)
