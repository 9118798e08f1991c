"""The AMQP frame scanner: it reads deliveries and confirms exactly as pika writes them, stops before
anything else (other frames, malformed or incomplete ones), and the compiled scanner returns what
its pure twin returns for any bytes.

``frames`` is parametrized over the two implementations (the compiled one marked ``c_extension``;
it skips when the module is not built), as ``codec`` is in ``conftest.py``.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

import pika.amqp_object
import pika.data
import pika.frame
import pika.spec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pika.spec import Basic, BasicProperties

from machinery._speedups import _frames_py
from machinery._speedups._frames_py import Confirmed, Delivered
from tests.hotpath.conftest import built, import_compiled, twin_params

Scan = tuple[int, int, list[Delivered], list[Confirmed]]
T = TypeVar("T")


class FramesModule(Protocol):
    """What both frame-scanner modules provide."""

    def scan_frames(self, data: bytes, offset: int, deliver_channel: int, confirm_channel: int) -> Scan: ...


PY_FRAMES: FramesModule = _frames_py
C_FRAMES = cast(FramesModule | None, import_compiled("_frames_c"))
FRAMES_PARAMS = twin_params(PY_FRAMES, C_FRAMES, "frame scanner")


@pytest.fixture(params=FRAMES_PARAMS, scope="module")
def frames(request: pytest.FixtureRequest) -> FramesModule:
    """Each frame-scanner implementation in turn."""
    return cast(FramesModule, request.param)


@pytest.fixture(scope="module")
def compiled_frames() -> FramesModule:
    """The compiled frame scanner (skips when it is not built)."""
    return built(C_FRAMES, "frame scanner")


EXAMPLES = settings(max_examples=80, deadline=None)
DELIVER_CHANNEL = 1
CONFIRM_CHANNEL = 2
OTHER_CHANNEL = 3
FRAME_END = 0xCE
#: Bytes of a frame around its payload: type, channel, size and the end marker.
FRAME_OVERHEAD = 8
NOTHING: Scan = (0, 0, [], [])


# -- Building frames with pika --------------------------------------------------------------------


def method_frame(channel: int, method: pika.amqp_object.Method) -> bytes:
    return pika.frame.Method(channel, method).marshal()


def raw_frame(kind: int, channel: int, payload: bytes, end: int = FRAME_END) -> bytes:
    """A frame written by hand, for shapes pika would not write."""
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + bytes([end])


def table_bytes(table: pika.data._ArgumentMapping) -> bytes:
    """An AMQP field table as pika writes it, with its 4-byte length."""
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, table)
    return b"".join(pieces)


@dataclass(frozen=True)
class Delivery:
    """A Basic.Deliver with its content, and what the scanner must make of it."""

    consumer_tag: str
    delivery_tag: int
    redelivered: bool
    exchange: str
    routing_key: str
    properties: BasicProperties
    body: bytes

    def frames(self, channel: int, frame_max: int) -> list[bytes]:
        """The method frame, the content header frame and the body frames (at most ``frame_max`` bytes each)."""
        deliver = Basic.Deliver(self.consumer_tag, self.delivery_tag, self.redelivered, self.exchange, self.routing_key)
        step = frame_max - FRAME_OVERHEAD
        bodies = [pika.frame.Body(channel, self.body[i:i + step]).marshal() for i in range(0, len(self.body), step)]
        return [method_frame(channel, deliver), pika.frame.Header(channel, len(self.body), self.properties).marshal(),
                *bodies]

    def expected(self) -> Delivered:
        headers = self.properties.headers
        table = None if headers is None else table_bytes(headers)
        priority = self.properties.priority or 0
        return (self.consumer_tag, self.delivery_tag, self.redelivered, priority, table, self.body)


@dataclass(frozen=True)
class Confirm:
    """A publisher confirm (Basic.Ack, or Basic.Nack with its requeue bit), and what the scanner must make of it."""

    delivery_tag: int
    multiple: bool
    nack: bool
    requeue: bool = False

    def frames(self, channel: int) -> list[bytes]:
        method = (Basic.Nack(self.delivery_tag, self.multiple, self.requeue) if self.nack
                  else Basic.Ack(self.delivery_tag, self.multiple))
        return [method_frame(channel, method)]

    def expected(self) -> Confirmed:
        return (self.delivery_tag, self.multiple, self.nack)


Item = Delivery | Confirm


@dataclass(frozen=True)
class Stream:
    """Deliveries and confirms in a row, as the broker would send them."""

    items: tuple[Item, ...]
    deliver_channel: int = DELIVER_CHANNEL
    confirm_channel: int = CONFIRM_CHANNEL
    frame_max: int = 4096

    def chunks(self) -> list[list[bytes]]:
        """Each item's frames."""
        return [item.frames(self.deliver_channel, self.frame_max) if isinstance(item, Delivery)
                else item.frames(self.confirm_channel) for item in self.items]

    @property
    def data(self) -> bytes:
        return b"".join(b"".join(chunk) for chunk in self.chunks())

    def ends(self) -> list[int]:
        """Where each item's last frame ends in ``data``."""
        ends: list[int] = []
        at = 0
        for chunk in self.chunks():
            at += sum(len(f) for f in chunk)
            ends.append(at)
        return ends

    def expect(self, count: int | None = None) -> Scan:
        """The scan of the first ``count`` items (all by default)."""
        chunks = self.chunks()[:count]
        items = self.items[:count]
        used = sum(len(f) for chunk in chunks for f in chunk)
        deliveries = [item.expected() for item in items if isinstance(item, Delivery)]
        confirms = [item.expected() for item in items if isinstance(item, Confirm)]
        return used, sum(len(chunk) for chunk in chunks), deliveries, confirms

    def scan(self, module: FramesModule) -> Scan:
        return module.scan_frames(self.data, 0, self.deliver_channel, self.confirm_channel)


def typed(scan: Scan) -> object:
    """``scan`` with each value's exact type beside it (``True == 1``, but a bool is promised)."""
    used, count, deliveries, confirms = scan
    return (type(used), used, type(count), count, type(deliveries), type(confirms),
            [(type(d), [(type(v), v) for v in d]) for d in deliveries],
            [(type(c), [(type(v), v) for v in c]) for c in confirms])


def assert_scan(result: Scan, expected: Scan) -> None:
    assert type(result) is tuple
    assert result == expected
    assert typed(result) == typed(expected)


# -- Strategies -----------------------------------------------------------------------------------

# Short strings: at most 20 characters, so at most 80 UTF-8 bytes (surrogates cannot be encoded).
shortstr = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
# A consumer tag of up to 63 characters is at most 252 bytes: non-ASCII ones included.
consumer_tags = st.text(st.characters(exclude_categories=["Cs"]), max_size=63)
longlongs = st.integers(min_value=0, max_value=2**64 - 1)
header_values = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.binary(max_size=20),
)
header_tables = st.dictionaries(shortstr, header_values, max_size=4)


def maybe(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.none() | strategy


properties = st.builds(
    BasicProperties,
    content_type=maybe(shortstr),
    content_encoding=maybe(shortstr),
    headers=maybe(header_tables),
    delivery_mode=maybe(st.sampled_from([1, 2])),
    priority=maybe(st.integers(min_value=0, max_value=255)),
    correlation_id=maybe(shortstr),
    reply_to=maybe(shortstr),
    expiration=maybe(shortstr),
    message_id=maybe(shortstr),
    timestamp=maybe(longlongs),
    type=maybe(shortstr),
    user_id=maybe(shortstr),
    app_id=maybe(shortstr),
    cluster_id=maybe(shortstr),
)
deliveries = st.builds(
    Delivery,
    consumer_tag=consumer_tags,
    delivery_tag=longlongs,
    redelivered=st.booleans(),
    exchange=shortstr,
    routing_key=shortstr,
    properties=properties,
    body=st.binary(max_size=64),
)
confirms = st.builds(
    Confirm, delivery_tag=longlongs, multiple=st.booleans(), nack=st.booleans(), requeue=st.booleans()
)
# Channels are often equal (both kinds on one channel) and include the extremes.
channels = st.sampled_from([1, 2, 65535]) | st.integers(min_value=0, max_value=65535)
streams = st.builds(
    Stream,
    items=st.lists(deliveries | confirms, max_size=5).map(tuple),
    deliver_channel=channels,
    confirm_channel=channels,
    # Body frames of 1 to 24 bytes: a 64-byte body takes up to 64 frames.
    frame_max=st.integers(min_value=FRAME_OVERHEAD + 1, max_value=FRAME_OVERHEAD + 24),
)
small_streams = st.builds(
    Stream,
    items=st.lists(
        st.builds(Delivery, consumer_tag=shortstr, delivery_tag=longlongs, redelivered=st.booleans(),
                  exchange=shortstr, routing_key=shortstr, properties=properties, body=st.binary(max_size=24))
        | confirms,
        max_size=4,
    ).map(tuple),
    frame_max=st.integers(min_value=FRAME_OVERHEAD + 1, max_value=FRAME_OVERHEAD + 16),
)


# -- Valid streams --------------------------------------------------------------------------------


@EXAMPLES
@given(streams, st.binary(max_size=12))
def test_reads_every_delivery_and_confirm_pika_writes(frames: FramesModule, stream: Stream, prefix: bytes) -> None:
    """Every delivery (any properties, bodies of 0 to many frames) and confirm comes back with
    exactly its values, all bytes and frames are read, and reading starts at ``offset``."""
    data = prefix + stream.data
    result = frames.scan_frames(data, len(prefix), stream.deliver_channel, stream.confirm_channel)
    assert_scan(result, stream.expect())
    assert result[0] == len(data) - len(prefix)


@EXAMPLES
@given(streams)
def test_headers_are_the_table_pika_reads(frames: FramesModule, stream: Stream) -> None:
    """The raw headers table decodes to what pika itself reads from the content header frame (and
    to the table that was sent); a message without headers gives None."""
    _, _, got, _ = stream.scan(frames)
    sent = [(item, chunk) for item, chunk in zip(stream.items, stream.chunks(), strict=True)
            if isinstance(item, Delivery)]
    assert len(got) == len(sent)
    for (*_, headers, _body), (item, chunk) in zip(got, sent, strict=True):
        consumed, header = pika.frame.decode_frame(chunk[1])
        assert consumed == len(chunk[1])
        assert isinstance(header, pika.frame.Header)
        if header.properties.headers is None:
            assert headers is None
        else:
            assert headers is not None
            assert pika.data.decode_table(headers, 0) == (header.properties.headers, len(headers))
            assert header.properties.headers == item.properties.headers


@pytest.mark.parametrize(
    "delivery",
    [
        Delivery("é" * 127 + "x", 2**64 - 1, True, "x" * 255, "é" * 127, BasicProperties(priority=255), b""),
        Delivery("", 0, False, "", "", BasicProperties(), b"\x00"),
        Delivery("ctag", 1, False, "", "q", BasicProperties(headers={}), b"b" * (4096 - FRAME_OVERHEAD)),
        Delivery("ctag", 2, False, "", "q", BasicProperties(priority=0, headers={"k": "v"}), b"b" * 10_000),
        Delivery("ctag", 3, False, "", "q", BasicProperties(timestamp=2**64 - 1, delivery_mode=2), bytes(range(256))),
    ],
    ids=["longest-strings-empty-body", "no-properties", "one-full-frame", "three-frames", "timestamp"],
)
def test_reads_edge_deliveries(frames: FramesModule, delivery: Delivery) -> None:
    """255-byte short strings, the largest tags and priority, empty and exactly-one-frame bodies,
    an empty headers table (not None) and a body over several full frames."""
    stream = Stream((delivery, Confirm(7, True, True)))
    assert_scan(stream.scan(frames), stream.expect())


def test_counts_frames(frames: FramesModule) -> None:
    """A confirm is one frame; a delivery is its method, its header and one frame per body part."""
    stream = Stream((Delivery("c", 1, False, "", "q", BasicProperties(), b"x" * 25), Confirm(1, False, False),
                     Delivery("c", 2, False, "", "q", BasicProperties(), b"")), frame_max=FRAME_OVERHEAD + 10)
    used, count, _, _ = stream.scan(frames)
    assert (used, count) == (len(stream.data), (2 + 3) + 1 + 2)


def test_nack_and_multiple_flags(frames: FramesModule) -> None:
    """A confirm's multiple flag and nack-ness come from its own bits, never a nack's requeue bit."""
    flags = list(itertools.product((False, True), repeat=3))
    stream = Stream(tuple(Confirm(tag, *bits) for tag, bits in enumerate(flags)))
    assert stream.scan(frames)[3] == [(tag, multiple, nack) for tag, (multiple, nack, _) in enumerate(flags)]


def test_empty_and_end_offsets(frames: FramesModule) -> None:
    """Nothing to read at the end of the data (or in empty data) is no error."""
    data = Stream((Confirm(1, False, False),)).data
    assert_scan(frames.scan_frames(b"", 0, 1, 2), NOTHING)
    assert_scan(frames.scan_frames(data, len(data), 1, 2), NOTHING)


@pytest.mark.parametrize("offset", [-1, -100, 22, 23, 2**31, 2**70, -(2**70)])
def test_an_offset_outside_the_data_is_a_value_error(frames: FramesModule, offset: int) -> None:
    """The one error the scanner raises: an offset before the data or past its end."""
    data = Stream((Confirm(1, False, False),)).data
    assert len(data) == 21
    with pytest.raises(ValueError, match=f"offset {offset} is outside the data \\(21 bytes\\)"):
        frames.scan_frames(data, offset, 1, 2)


# -- Where it stops -------------------------------------------------------------------------------

BEFORE = Stream((
    Delivery("ctag", 10, False, "ex", "rk", BasicProperties(priority=3, headers={"a": 1}), b"hello"),
    Confirm(4, False, False),
))
AFTER = Stream((Confirm(5, True, False), Delivery("ctag", 11, True, "", "q", BasicProperties(), b"bye")))
PROPS = BasicProperties(content_type="text/plain")


def deliver_frames(channel: int = DELIVER_CHANNEL, body: bytes = b"hi") -> list[bytes]:
    return Delivery("ctag", 12, False, "", "q", PROPS, body).frames(channel, 4096)


def header_payload(flags: int, properties: bytes, body_size: int = 2, class_id: int = 60) -> bytes:
    return struct.pack(">HHQH", class_id, 0, body_size, flags) + properties


def deliver_with_header(payload: bytes, body: bytes = b"hi") -> bytes:
    method, _header, *_ = deliver_frames()
    return method + raw_frame(2, DELIVER_CHANNEL, payload) + pika.frame.Body(DELIVER_CHANNEL, body).marshal()


def deliver_payload(consumer_tag: bytes, names: bytes = b"\x00\x01q") -> bytes:
    """A Basic.Deliver's arguments: ``names`` are the exchange and routing key short strings."""
    return struct.pack(">HHB", 60, 60, len(consumer_tag)) + consumer_tag + struct.pack(">QB", 12, 0) + names


def hand_made_deliver(payload: bytes) -> bytes:
    return raw_frame(1, DELIVER_CHANNEL, payload) + b"".join(deliver_frames()[1:])


def replace_last_byte(frame: bytes, value: int) -> bytes:
    return frame[:-1] + bytes([value])


OTHER_FRAMES: dict[str, Callable[[], bytes]] = {
    "heartbeat": lambda: pika.frame.Heartbeat().marshal(),
    "protocol-header": lambda: pika.frame.ProtocolHeader().marshal(),
    "basic-return-with-content": lambda: (
        method_frame(DELIVER_CHANNEL, Basic.Return(312, "NO_ROUTE", "ex", "rk"))
        + pika.frame.Header(DELIVER_CHANNEL, 2, PROPS).marshal() + pika.frame.Body(DELIVER_CHANNEL, b"hi").marshal()
    ),
    "basic-get-ok-with-content": lambda: (
        method_frame(DELIVER_CHANNEL, Basic.GetOk(1, False, "ex", "rk", 0))
        + pika.frame.Header(DELIVER_CHANNEL, 2, PROPS).marshal() + pika.frame.Body(DELIVER_CHANNEL, b"hi").marshal()
    ),
    "basic-cancel": lambda: method_frame(DELIVER_CHANNEL, Basic.Cancel("ctag")),
    "channel-close": lambda: method_frame(DELIVER_CHANNEL, pika.spec.Channel.Close(406, "NOT_FOUND", 60, 80)),
    "channel-close-on-the-confirm-channel": lambda: method_frame(
        CONFIRM_CHANNEL, pika.spec.Channel.Close(406, "PRECONDITION_FAILED", 0, 0)),
    "connection-close": lambda: method_frame(0, pika.spec.Connection.Close(320, "CONNECTION_FORCED", 0, 0)),
    "connection-blocked": lambda: method_frame(0, pika.spec.Connection.Blocked("low on memory")),
    "deliver-on-another-channel": lambda: b"".join(deliver_frames(OTHER_CHANNEL)),
    "deliver-on-the-confirm-channel": lambda: b"".join(deliver_frames(CONFIRM_CHANNEL)),
    "ack-on-another-channel": lambda: method_frame(OTHER_CHANNEL, Basic.Ack(5)),
    "nack-on-the-deliver-channel": lambda: method_frame(DELIVER_CHANNEL, Basic.Nack(5)),
    "header-without-a-deliver": lambda: b"".join(deliver_frames()[1:]),
    "body-without-a-deliver": lambda: deliver_frames()[2],
}

MALFORMED: dict[str, Callable[[], bytes]] = {
    "frame-end-is-not-0xce": lambda: replace_last_byte(method_frame(CONFIRM_CHANNEL, Basic.Ack(5)), 0),
    "deliver-header-frame-end-is-not-0xce": lambda: b"".join(
        [f if i != 1 else replace_last_byte(f, 0xCF) for i, f in enumerate(deliver_frames())]),
    "ack-without-its-bits": lambda: raw_frame(1, CONFIRM_CHANNEL, struct.pack(">HHQ", 60, 80, 5)),
    "ack-with-a-byte-too-many": lambda: raw_frame(1, CONFIRM_CHANNEL, struct.pack(">HHQBB", 60, 80, 5, 0, 0)),
    "method-frame-without-a-method-id": lambda: raw_frame(1, CONFIRM_CHANNEL, b"\x00\x3c\x00"),
    "consumer-tag-is-not-utf8": lambda: hand_made_deliver(deliver_payload(b"\xff\xfe")),
    "consumer-tag-past-the-frame": lambda: hand_made_deliver(struct.pack(">HHB", 60, 60, 200) + b"c" * 20),
    "deliver-with-a-byte-too-many": lambda: hand_made_deliver(deliver_payload(b"ctag", b"\x00\x01q\x00")),
    "deliver-without-its-names": lambda: hand_made_deliver(deliver_payload(b"ctag", b"")),
    "deliver-without-its-routing-key": lambda: hand_made_deliver(deliver_payload(b"ctag", b"\x00")),
    "deliver-exchange-past-the-frame": lambda: hand_made_deliver(deliver_payload(b"ctag", b"\x05ab\x00")),
    "deliver-routing-key-past-the-frame": lambda: hand_made_deliver(deliver_payload(b"ctag", b"\x00\x05q")),
    "header-of-another-class": lambda: deliver_with_header(header_payload(0, b"", class_id=50)),
    "header-with-more-flag-words": lambda: deliver_with_header(header_payload(0x0001, b"\x00\x00")),
    "header-with-reserved-flag-bit": lambda: deliver_with_header(header_payload(0x0002, b"")),
    "header-missing-a-flagged-property": lambda: deliver_with_header(header_payload(0x0800, b"")),
    "header-with-a-byte-past-its-properties": lambda: deliver_with_header(header_payload(0x0800, b"\x01\x00")),
    "header-shortstr-past-the-frame": lambda: deliver_with_header(header_payload(0x8000, b"\x05abc")),
    "header-table-past-the-frame": lambda: deliver_with_header(header_payload(0x2000, b"\x00\x00\x00\x09abc")),
    "header-table-without-its-length": lambda: deliver_with_header(header_payload(0x2000, b"\x00\x00")),
    "header-table-without-its-length-and-no-body": lambda: deliver_frames()[0] + raw_frame(
        2, DELIVER_CHANNEL, header_payload(0x2000, b"\x00\x00", body_size=0)),
    "header-timestamp-cut-short": lambda: deliver_with_header(header_payload(0x0040, b"\x00" * 7)),
    "header-too-short-for-its-fields": lambda: deliver_with_header(struct.pack(">HHQ", 60, 0, 2)),
    "header-on-another-channel": lambda: b"".join(
        [deliver_frames()[0], deliver_frames(OTHER_CHANNEL)[1], deliver_frames()[2]]),
    "content-on-another-channel": lambda: b"".join([deliver_frames()[0], *deliver_frames(OTHER_CHANNEL)[1:]]),
    "deliver-followed-by-a-body": lambda: b"".join([deliver_frames()[0], deliver_frames()[2]]),
    "deliver-followed-by-a-deliver": lambda: b"".join([deliver_frames()[0], *deliver_frames()]),
    "deliver-followed-by-an-ack": lambda: b"".join(
        [deliver_frames()[0], method_frame(CONFIRM_CHANNEL, Basic.Ack(5)), *deliver_frames()[1:]]),
    "empty-body-frame": lambda: b"".join(
        [*deliver_frames()[:2], pika.frame.Body(DELIVER_CHANNEL, b"").marshal(), deliver_frames()[2]]),
    "body-longer-than-announced": lambda: b"".join([*deliver_frames()[:2], pika.frame.Body(DELIVER_CHANNEL, b"hi!")
                                                    .marshal()]),
    "body-on-another-channel": lambda: b"".join([*deliver_frames()[:2], deliver_frames(OTHER_CHANNEL)[2]]),
    "body-short-then-an-ack": lambda: b"".join([
        deliver_frames()[0], pika.frame.Header(DELIVER_CHANNEL, 3, PROPS).marshal(), deliver_frames()[2],
        method_frame(CONFIRM_CHANNEL, Basic.Ack(5))]),
}


@pytest.mark.parametrize("other", OTHER_FRAMES.values(), ids=OTHER_FRAMES.keys())
def test_stops_before_any_other_frame(frames: FramesModule, other: Callable[[], bytes]) -> None:
    """What came before is read, the other frame and everything after it is not (it is pika's),
    and reading again after that frame goes on."""
    stopper = other()
    data = BEFORE.data + stopper + AFTER.data
    assert_scan(frames.scan_frames(data, 0, DELIVER_CHANNEL, CONFIRM_CHANNEL), BEFORE.expect())
    assert_scan(frames.scan_frames(data, len(BEFORE.data), DELIVER_CHANNEL, CONFIRM_CHANNEL), NOTHING)
    resumed = frames.scan_frames(data, len(BEFORE.data) + len(stopper), DELIVER_CHANNEL, CONFIRM_CHANNEL)
    assert_scan(resumed, AFTER.expect())


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
def test_stops_before_a_malformed_frame(frames: FramesModule, bad: Callable[[], bytes]) -> None:
    """A malformed frame (or delivery) is not read, nor anything after it, whether or not more data
    follows; nothing raises."""
    for after in (AFTER.data, b""):
        data = BEFORE.data + bad() + after
        assert_scan(frames.scan_frames(data, 0, DELIVER_CHANNEL, CONFIRM_CHANNEL), BEFORE.expect())
        assert_scan(frames.scan_frames(data, len(BEFORE.data), DELIVER_CHANNEL, CONFIRM_CHANNEL), NOTHING)


@pytest.mark.parametrize(("bits", "set_"), [(0x00, False), (0x01, True), (0xFE, False), (0xFF, True)])
def test_only_the_first_bit_of_a_flag_octet_counts(frames: FramesModule, bits: int, set_: bool) -> None:
    """A deliver's redelivered flag and a confirm's multiple flag are bit 0 of their octet, as pika
    reads them; the other (reserved, or a nack's requeue) bits are not them."""
    deliver = struct.pack(">HHB", 60, 60, 1) + b"c" + struct.pack(">QB", 9, bits) + b"\x00\x00"
    data = (hand_made_deliver(deliver) + raw_frame(1, CONFIRM_CHANNEL, struct.pack(">HHQB", 60, 80, 1, bits))
            + raw_frame(1, CONFIRM_CHANNEL, struct.pack(">HHQB", 60, 120, 2, bits)))
    used, _, got, acks = frames.scan_frames(data, 0, DELIVER_CHANNEL, CONFIRM_CHANNEL)
    assert used == len(data)
    assert [delivery[2] for delivery in got] == [set_]
    assert acks == [(1, set_, False), (2, set_, True)]


def test_the_hand_made_frames_are_well_formed_where_not_meant_to_be_broken(frames: FramesModule) -> None:
    """The helpers behind MALFORMED write frames the scanner reads when nothing is broken, so each
    case above fails for its one defect."""
    good = [
        raw_frame(1, CONFIRM_CHANNEL, struct.pack(">HHQB", 60, 80, 5, 0)),
        hand_made_deliver(deliver_payload(b"ctag")),
        deliver_with_header(header_payload(0x0800 | 0x2000 | 0x0040 | 0x8000,
                                           b"\x03abc" + b"\x00\x00\x00\x00" + b"\x07" + b"\x00" * 8)),
    ]
    data = b"".join(good)
    used, count, got, acks = frames.scan_frames(data, 0, DELIVER_CHANNEL, CONFIRM_CHANNEL)
    assert (used, count, acks) == (len(data), 7, [(5, False, False)])
    assert got == [("ctag", 12, False, 0, None, b"hi"), ("ctag", 12, False, 7, b"\x00\x00\x00\x00", b"hi")]


# -- Incomplete data ------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(small_streams)
def test_a_cut_stream_reads_what_is_complete_before_the_cut(frames: FramesModule, stream: Stream) -> None:
    """Cut at every byte, the scan is that of the deliveries and confirms wholly before the cut: a
    delivery counts only with all its body, and nothing past the cut is read."""
    data = stream.data
    ends = stream.ends()
    for cut in range(len(data) + 1):
        complete = sum(1 for end in ends if end <= cut)
        result = frames.scan_frames(data[:cut], 0, stream.deliver_channel, stream.confirm_channel)
        assert result[0] <= cut
        assert_scan(result, stream.expect(complete))


# -- The twins agree ------------------------------------------------------------------------------


def outcome(module: FramesModule, data: bytes, offset: int, deliver_channel: int, confirm_channel: int) -> object:
    """The scan, or the ValueError's message (any other exception fails the test)."""
    try:
        result = module.scan_frames(data, offset, deliver_channel, confirm_channel)
    except ValueError as error:
        assert not 0 <= offset <= len(data)
        return str(error)
    assert 0 <= result[0] <= len(data) - offset
    return typed(result)


def assert_twins_agree(compiled: FramesModule, data: bytes, offset: int, deliver_channel: int,
                       confirm_channel: int) -> None:
    twin = outcome(PY_FRAMES, data, offset, deliver_channel, confirm_channel)
    assert outcome(compiled, data, offset, deliver_channel, confirm_channel) == twin


# Frames that look like deliveries and confirms, or nearly: parts of real ones, and hand-made frames
# of any type, channel and end marker whose payload starts like a Basic method or content header.
hand_made_frames = st.builds(
    raw_frame,
    kind=st.sampled_from([1, 2, 3, 8]) | st.integers(min_value=0, max_value=255),
    channel=st.sampled_from([DELIVER_CHANNEL, CONFIRM_CHANNEL, OTHER_CHANNEL]),
    payload=st.builds(
        bytes.__add__,
        st.sampled_from([b"", b"\x00\x3c\x00\x3c", b"\x00\x3c\x00\x50", b"\x00\x3c\x00\x78", b"\x00\x14\x00\x28",
                         b"\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"]),
        st.binary(max_size=24),
    ),
    end=st.just(FRAME_END) | st.integers(min_value=0, max_value=255),
)
real_frames = st.builds(
    Stream, st.lists(deliveries | confirms, max_size=2).map(tuple),
    frame_max=st.integers(min_value=FRAME_OVERHEAD + 1, max_value=FRAME_OVERHEAD + 16),
).flatmap(lambda stream: st.sampled_from([stream.data, *(f for chunk in stream.chunks() for f in chunk)]))
frame_soups = st.lists(hand_made_frames | real_frames, max_size=6).map(b"".join)


@pytest.mark.c_extension
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=-3, max_value=203), channels, channels)
def test_twins_agree_on_any_bytes(compiled_frames: FramesModule, data: bytes, offset: int, deliver_channel: int,
                                  confirm_channel: int) -> None:
    """Arbitrary bytes at any offset (some outside the data): the same scan or the same ValueError."""
    assert_twins_agree(compiled_frames, data, offset, deliver_channel, confirm_channel)


@pytest.mark.c_extension
@settings(max_examples=300, deadline=None)
@given(frame_soups, st.data())
def test_twins_agree_on_nearly_valid_frames(compiled_frames: FramesModule, data: bytes, draw: st.DataObject) -> None:
    """Frames that are nearly deliveries and confirms (where random bytes seldom reach): the same scan."""
    offset = draw.draw(st.integers(min_value=0, max_value=len(data)))
    assert_twins_agree(compiled_frames, data, 0, DELIVER_CHANNEL, CONFIRM_CHANNEL)
    assert_twins_agree(compiled_frames, data, offset, DELIVER_CHANNEL, CONFIRM_CHANNEL)


@pytest.mark.c_extension
@settings(max_examples=300, deadline=None)
@given(
    streams,
    st.lists(
        st.tuples(st.sampled_from(["set", "insert", "delete"]), st.integers(min_value=0), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    ),
    st.data(),
)
def test_twins_agree_on_mutated_streams(compiled_frames: FramesModule, stream: Stream,
                                        mutations: list[tuple[str, int, int]], draw: st.DataObject) -> None:
    """A valid stream with bytes changed, inserted or deleted, read from any offset: the same scan."""
    data = bytearray(stream.data)
    for action, position, value in mutations:
        if action == "insert":
            data.insert(position % (len(data) + 1), value)
        elif data and action == "set":
            data[position % len(data)] = value
        elif data:
            del data[position % len(data)]
    mutated = bytes(data)
    offset = draw.draw(st.integers(min_value=0, max_value=len(mutated)))
    assert_twins_agree(compiled_frames, mutated, 0, stream.deliver_channel, stream.confirm_channel)
    assert_twins_agree(compiled_frames, mutated, offset, stream.deliver_channel, stream.confirm_channel)


# A flag word: the real one, with one bit flipped, or any.
flag_changes = st.just(0) | st.sampled_from([1 << bit for bit in range(16)]) | st.integers(0, 0xFFFF)


@EXAMPLES
@given(properties, flag_changes, st.integers(min_value=-2, max_value=2), st.data())
def test_any_property_flags_read_as_pika_reads_them(frames: FramesModule, props: BasicProperties, change: int,
                                                      trim: int, draw: st.DataObject) -> None:
    """A content header with any flag word over real property bytes (give or take a couple) is read
    with the priority and headers table pika reads from it, or refused (never when unchanged)."""
    encoded = b"".join(props.encode())
    flags = struct.unpack_from(">H", encoded)[0] ^ change
    real = encoded[2:]
    payload = real[:max(0, len(real) + trim)] if trim < 0 else real + draw.draw(st.binary(min_size=trim, max_size=trim))
    data = deliver_with_header(header_payload(flags, payload))
    result = frames.scan_frames(data, 0, DELIVER_CHANNEL, CONFIRM_CHANNEL)
    if not result[2]:
        assert_scan(result, NOTHING)
        assert change or trim
        return
    assert result[:2] == (len(data), 3)
    ((_, _, _, priority, headers, _),) = result[2]
    try:
        _, header = pika.frame.decode_frame(data[len(deliver_frames()[0]):])
    except Exception:  # a table pika cannot read: the scanner takes its bytes as they are
        assert headers is not None
        return
    assert isinstance(header, pika.frame.Header)
    assert priority == (header.properties.priority or 0)
    assert (headers is None) == (header.properties.headers is None)
    if headers is not None:
        assert pika.data.decode_table(headers, 0)[0] == header.properties.headers
