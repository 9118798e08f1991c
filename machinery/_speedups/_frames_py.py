"""The pure-Python AMQP frame scanner: the reference for the compiled one in ``_frames_c.pyx``.

The AMQP broker reads the two kinds of frames that make up nearly all its traffic itself instead
of through pika's per-frame objects: a ``Basic.Deliver`` with its content header and body frames
on the consuming channel, and publisher confirms (``Basic.Ack`` / ``Basic.Nack``) on the
publishing channel. ``scan_frames`` reads such frames from ``offset`` on and stops before the
first frame that is anything else, is malformed or is not complete in ``data`` (a delivery counts
only with all its content); the caller hands that frame to pika. It never raises on bad bytes: it
just stops, and pika's own parser judges them. The compiled module must return the same values.

A delivery is ``(consumer_tag, delivery_tag, redelivered, priority, headers, body)``, where
``headers`` is the raw AMQP field table (with its 4-byte length) or None when the message has none;
a confirm is ``(delivery_tag, multiple, nack)``.
"""

from __future__ import annotations

import struct

__all__ = ["Confirmed", "Delivered", "scan_frames"]

#: ``(consumer_tag, delivery_tag, redelivered, priority, headers table or None, body)``
Delivered = tuple[str, int, bool, int, bytes | None, bytes]
#: ``(delivery_tag, multiple, nack)``
Confirmed = tuple[int, bool, bool]

_FRAME_END = 0xCE
_METHOD, _HEADER, _BODY = 1, 2, 3
_BASIC = 60
_DELIVER, _ACK, _NACK = 60, 80, 120
_HEAD = struct.Struct(">BHI")
_IDS = struct.Struct(">HH")
_LONGLONG = struct.Struct(">Q")
_CONTENT = struct.Struct(">HHQH")
_LONG = struct.Struct(">I")

# Basic properties in flag order, from the highest bit: shortstr (s), table (t), octet (o),
# timestamp (q). Bit 0 would announce more flag words, which Basic never has.
_PROPERTIES = (
    (0x8000, "s"), (0x4000, "s"), (0x2000, "t"), (0x1000, "o"), (0x0800, "o"), (0x0400, "s"),
    (0x0200, "s"), (0x0100, "s"), (0x0080, "s"), (0x0040, "q"), (0x0020, "s"), (0x0010, "s"),
    (0x0008, "s"), (0x0004, "s"),
)
_PRIORITY = 0x0800
_HEADERS = 0x2000


def _frame(data: bytes, at: int, end: int) -> tuple[int, int, int] | None:
    """(kind, channel, end of payload) of the complete frame at ``at``, or None."""
    if end - at < 8:
        return None
    kind, channel, size = _HEAD.unpack_from(data, at)
    stop = at + 7 + size
    if stop >= end or data[stop] != _FRAME_END:
        return None
    return kind, channel, stop


def _properties(data: bytes, at: int, stop: int, flags: int) -> tuple[int, bytes | None] | None:
    """(priority, headers table) of content-header properties from ``at`` to ``stop``, or None."""
    if flags & 0x0003:
        return None
    priority = 0
    headers: bytes | None = None
    for bit, kind in _PROPERTIES:
        if not flags & bit:
            continue
        if kind == "s":
            if at >= stop:
                return None
            at += 1 + data[at]
        elif kind == "t":
            if stop - at < 4:
                return None
            size = _LONG.unpack_from(data, at)[0]
            if size > stop - at - 4:
                return None
            headers = data[at:at + 4 + size]
            at += 4 + size
        elif kind == "o":
            if at >= stop:
                return None
            if bit == _PRIORITY:
                priority = data[at]
            at += 1
        else:
            at += 8
        if at > stop:
            return None
    if at != stop:
        return None
    return priority, headers


def scan_frames(
    data: bytes, offset: int, deliver_channel: int, confirm_channel: int
) -> tuple[int, int, list[Delivered], list[Confirmed]]:
    """Read deliveries on ``deliver_channel`` and confirms on ``confirm_channel`` from ``offset``:
    (bytes read, frames read, deliveries, confirms), stopping before the first other frame."""
    end = len(data)
    if offset < 0 or offset > end:
        raise ValueError(f"offset {offset} is outside the data ({end} bytes)")
    at = offset
    frames = 0
    deliveries: list[Delivered] = []
    confirms: list[Confirmed] = []
    while True:
        found = _frame(data, at, end)
        if found is None:
            break
        kind, channel, stop = found
        if kind != _METHOD or stop - at < 11:
            break
        class_id, method_id = _IDS.unpack_from(data, at + 7)
        if class_id != _BASIC:
            break
        p = at + 11
        if method_id in (_ACK, _NACK):
            if channel != confirm_channel or stop - p != 9:
                break
            tag = _LONGLONG.unpack_from(data, p)[0]
            confirms.append((tag, bool(data[p + 8] & 1), method_id == _NACK))
            at = stop + 1
            frames += 1
            continue
        if method_id != _DELIVER or channel != deliver_channel:
            break
        # Basic.Deliver: consumer-tag, delivery-tag, redelivered, exchange, routing-key.
        tag_end = p + 1 + data[p]
        if tag_end + 11 > stop:
            break
        try:
            consumer_tag = data[p + 1:tag_end].decode("utf-8")
        except UnicodeDecodeError:
            break
        delivery_tag = _LONGLONG.unpack_from(data, tag_end)[0]
        redelivered = bool(data[tag_end + 8] & 1)
        q = tag_end + 9
        q += 1 + data[q]
        if q >= stop:
            break
        q += 1 + data[q]
        if q != stop:
            break
        # The content header frame.
        head_at = stop + 1
        found = _frame(data, head_at, end)
        if found is None:
            break
        kind, head_channel, head_stop = found
        if kind != _HEADER or head_channel != channel or head_stop - head_at < 21:
            break
        class_id, _weight, body_size, flags = _CONTENT.unpack_from(data, head_at + 7)
        if class_id != _BASIC:
            break
        props = _properties(data, head_at + 21, head_stop, flags)
        if props is None:
            break
        # The body frames.
        parts: list[bytes] = []
        left = body_size
        b = head_stop + 1
        count = 2
        while left > 0:
            found = _frame(data, b, end)
            if found is None:
                break
            kind, body_channel, body_stop = found
            size = body_stop - b - 7
            if kind != _BODY or body_channel != channel or size == 0 or size > left:
                break
            parts.append(data[b + 7:body_stop])
            left -= size
            b = body_stop + 1
            count += 1
        if left > 0:
            break
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        deliveries.append((consumer_tag, delivery_tag, redelivered, props[0], props[1], body))
        at = b
        frames += count
    return at - offset, frames, deliveries, confirms
