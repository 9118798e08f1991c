# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled AMQP frame scanner: the same function and results as ``_frames_py`` (its reference),
reading the frame bytes in C."""

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

__all__ = ["scan_frames"]

cdef enum:
    FRAME_END = 0xCE
    METHOD = 1
    HEADER = 2
    BODY = 3
    BASIC = 60
    DELIVER = 60
    ACK = 80
    NACK = 120

# Basic properties from the highest flag bit down: 1 shortstr, 2 table, 3 octet, 4 timestamp.
cdef int[14] PROPERTY_BITS = [0x8000, 0x4000, 0x2000, 0x1000, 0x0800, 0x0400, 0x0200, 0x0100,
                              0x0080, 0x0040, 0x0020, 0x0010, 0x0008, 0x0004]
cdef int[14] PROPERTY_KINDS = [1, 1, 2, 3, 3, 1, 1, 1, 1, 4, 1, 1, 1, 1]


cdef inline uint16_t be16(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline uint32_t be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint64_t be64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>be32(p) << 32) | be32(p + 4)


cdef inline Py_ssize_t frame_at(const uint8_t* d, Py_ssize_t at, Py_ssize_t end,
                                int* kind, int* channel) noexcept nogil:
    """The index of the end marker of the complete frame at ``at``, or -1."""
    cdef Py_ssize_t stop
    if end - at < 8:
        return -1
    stop = at + 7 + <Py_ssize_t>be32(d + at + 3)
    if stop >= end or d[stop] != FRAME_END:
        return -1
    kind[0] = d[at]
    channel[0] = be16(d + at + 1)
    return stop


def scan_frames(bytes data, object offset, int deliver_channel, int confirm_channel):
    """Read deliveries on ``deliver_channel`` and confirms on ``confirm_channel`` from ``offset``:
    (bytes read, frames read, deliveries, confirms), stopping before the first other frame."""
    cdef const uint8_t* d = <const uint8_t*><char*>data
    cdef Py_ssize_t end = len(data)
    cdef Py_ssize_t at
    cdef Py_ssize_t p, stop, tag_end, q, head_at, head_stop, b, body_stop, size, prop, table_at
    cdef Py_ssize_t frames = 0
    cdef int kind, channel, kind2, channel2, method_id, count, i, flags, priority
    cdef uint64_t tag, left, body_size
    cdef bint redelivered
    cdef list deliveries = []
    cdef list confirms = []
    cdef list parts
    cdef object consumer_tag, headers, body
    if offset < 0 or offset > end:
        raise ValueError(f"offset {offset} is outside the data ({end} bytes)")
    at = offset
    while True:
        stop = frame_at(d, at, end, &kind, &channel)
        if stop < 0 or kind != METHOD or stop - at < 11:
            break
        if be16(d + at + 7) != BASIC:
            break
        method_id = be16(d + at + 9)
        p = at + 11
        if method_id == ACK or method_id == NACK:
            if channel != confirm_channel or stop - p != 9:
                break
            confirms.append((be64(d + p), (d[p + 8] & 1) != 0, method_id == NACK))
            at = stop + 1
            frames += 1
            continue
        if method_id != DELIVER or channel != deliver_channel:
            break
        tag_end = p + 1 + d[p]
        if tag_end + 11 > stop:
            break
        try:
            consumer_tag = data[p + 1:tag_end].decode("utf-8")
        except UnicodeDecodeError:
            break
        tag = be64(d + tag_end)
        redelivered = (d[tag_end + 8] & 1) != 0
        q = tag_end + 9
        q += 1 + d[q]
        if q >= stop:
            break
        q += 1 + d[q]
        if q != stop:
            break
        head_at = stop + 1
        head_stop = frame_at(d, head_at, end, &kind2, &channel2)
        if head_stop < 0 or kind2 != HEADER or channel2 != channel or head_stop - head_at < 21:
            break
        if be16(d + head_at + 7) != BASIC:
            break
        body_size = be64(d + head_at + 11)
        flags = be16(d + head_at + 19)
        if flags & 0x0003:
            break
        prop = head_at + 21
        priority = 0
        headers = None
        for i in range(14):
            if not flags & PROPERTY_BITS[i]:
                continue
            if PROPERTY_KINDS[i] == 1:
                if prop >= head_stop:
                    prop = head_stop + 1
                    break
                prop += 1 + d[prop]
            elif PROPERTY_KINDS[i] == 2:
                if head_stop - prop < 4:
                    prop = head_stop + 1
                    break
                size = <Py_ssize_t>be32(d + prop)
                if size > head_stop - prop - 4:
                    prop = head_stop + 1
                    break
                table_at = prop
                prop += 4 + size
                headers = data[table_at:prop]
            elif PROPERTY_KINDS[i] == 3:
                if prop >= head_stop:
                    prop = head_stop + 1
                    break
                if PROPERTY_BITS[i] == 0x0800:
                    priority = d[prop]
                prop += 1
            else:
                prop += 8
            if prop > head_stop:
                break
        if prop != head_stop:
            break
        parts = []
        left = body_size
        b = head_stop + 1
        count = 2
        while left > 0:
            body_stop = frame_at(d, b, end, &kind2, &channel2)
            if body_stop < 0:
                break
            size = body_stop - b - 7
            if kind2 != BODY or channel2 != channel or size == 0 or <uint64_t>size > left:
                break
            parts.append(data[b + 7:body_stop])
            left -= <uint64_t>size
            b = body_stop + 1
            count += 1
        if left > 0:
            break
        if body_size == 0:
            body = b""
        elif len(parts) == 1:
            body = parts[0]
        else:
            body = b"".join(parts)
        deliveries.append((consumer_tag, tag, redelivered, priority, headers, body))
        at = b
        frames += count
    return at - <Py_ssize_t>offset, frames, deliveries, confirms
