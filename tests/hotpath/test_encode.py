"""Encoding: the exact bytes of a Signature, and EncodeError for what JSON cannot carry."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from machinery.errors import EncodeError
from machinery.jsonvalues import MAX_DEPTH, FrozenDict
from machinery.signature import Signature
from machinery.workflows import chain
from tests.hotpath.conftest import CodecModule

EXAMPLE_CHAIN = (
    b'{"UUID":"t1","Name":"add","RoutingKey":"","ETA":null,"GroupUUID":"","GroupTaskCount":0,"Args":[1,1],'
    b'"Headers":{},"Priority":0,"Immutable":false,"RetryCount":0,"RetryTimeout":0,"OnSuccess":[{"UUID":"t2",'
    b'"Name":"add","RoutingKey":"","ETA":null,"GroupUUID":"","GroupTaskCount":0,"Args":[5,6],"Headers":{},'
    b'"Priority":0,"Immutable":false,"RetryCount":0,"RetryTimeout":0,"OnSuccess":[{"UUID":"t3",'
    b'"Name":"multiply","RoutingKey":"","ETA":null,"GroupUUID":"","GroupTaskCount":0,"Args":[4],'
    b'"Headers":{},"Priority":0,"Immutable":false,"RetryCount":0,"RetryTimeout":0,"OnSuccess":null,'
    b'"OnError":null,"ChordCallback":null}],"OnError":null,"ChordCallback":null}],"OnError":null,'
    b'"ChordCallback":null}'
)


def _with_field(sig: Signature, name: str, value: object) -> Signature:
    """``sig`` with a field forced to ``value``, past the constructor's checks."""
    copy = sig.replace()
    object.__setattr__(copy, name, value)
    return copy


def test_the_example_chain_encodes_to_known_bytes(codec: CodecModule) -> None:
    head = chain(
        Signature("add", [1, 1], uuid="t1"), Signature("add", [5, 6], uuid="t2"), Signature("multiply", [4], uuid="t3")
    ).head
    assert codec.encode(head) == EXAMPLE_CHAIN


def test_every_field_is_written(codec: CodecModule) -> None:
    sig = Signature(
        "n",
        ["a", 2.5, None, True, {"k": [1]}],
        routing_key="rk",
        immutable=True,
        on_error=[Signature("e", uuid="u2")],
        uuid="u1",
        eta=datetime(2024, 5, 6, 7, 8, 9, 120000, timezone.utc),
        group_uuid="g",
        group_task_count=3,
        headers={"h": "v"},
        priority=9,
        retry_count=2,
        retry_timeout=30,
        chord_callback=Signature("c", uuid="u3"),
    )
    obj = json.loads(codec.encode(sig))
    assert obj["ETA"] == "2024-05-06T07:08:09.12Z"
    assert obj["Args"] == ["a", 2.5, None, True, {"k": [1]}]
    assert (obj["RoutingKey"], obj["Immutable"], obj["GroupUUID"], obj["GroupTaskCount"]) == ("rk", True, "g", 3)
    assert (obj["Priority"], obj["RetryCount"], obj["RetryTimeout"], obj["Headers"]) == (9, 2, 30, {"h": "v"})
    assert obj["OnSuccess"] is None
    assert [s["Name"] for s in obj["OnError"]] == ["e"]
    assert obj["ChordCallback"]["Name"] == "c"


@pytest.mark.parametrize(
    "text", ['"', "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f", "/", "é", "€", "😀", "a\u2028b"]
)
def test_strings_are_escaped_as_json_does(codec: CodecModule, text: str) -> None:
    data = codec.encode(Signature("t", [text], uuid="u", headers={text: text}))
    expected = json.dumps(text, ensure_ascii=False).encode()
    assert b'"Args":[' + expected + b"]" in data
    assert b'"Headers":{' + expected + b":" + expected + b"}" in data


@pytest.mark.parametrize("number", [0.1, 1e16, 1e-7, -0.0, 1.5, 2.0**53, 5e-324, 1.7976931348623157e308, 123456789.0])
def test_floats_are_written_as_repr(codec: CodecModule, number: float) -> None:
    assert f'"Args":[{number!r}]'.encode() in codec.encode(Signature("t", [number]))


@pytest.mark.parametrize("number", [10**30, -(2**64), 2**63 - 1, -(2**63), 0])
def test_ints_are_written_in_full(codec: CodecModule, number: int) -> None:
    assert f'"Args":[{number}]'.encode() in codec.encode(Signature("t", [number]))


def test_eta_is_written_in_utc_with_z(codec: CodecModule) -> None:
    eta = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert b'"ETA":"2024-01-02T01:04:05Z"' in codec.encode(Signature("t", eta=eta))


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_encode_errors(codec: CodecModule, number: float) -> None:
    with pytest.raises(EncodeError, match="not a JSON number"):
        codec.encode(Signature("t", [[1, {"x": number}]]))


@pytest.mark.parametrize(
    "sig",
    [
        Signature("t\ud800"),
        Signature("t", ["\udfff"]),
        Signature("t", headers={"\ud83d": 1}),
        Signature("t", headers={"k": ["\ud83d\ude00"]}),
        Signature("t", uuid="\udc00"),
    ],
    ids=["name", "arg", "header-key", "surrogate-pair-as-two-points", "uuid"],
)
def test_lone_surrogates_are_encode_errors(codec: CodecModule, sig: Signature) -> None:
    with pytest.raises(EncodeError, match="lone surrogate"):
        codec.encode(sig)


def test_int_past_the_digit_limit_is_an_encode_error(codec: CodecModule) -> None:
    with pytest.raises(EncodeError, match="limit"):
        codec.encode(Signature("t", [10**5000]))


@pytest.mark.parametrize("value", [None, "add", {"Name": "add"}, 1, b"{}"])
def test_non_signatures_are_encode_errors(codec: CodecModule, value: object) -> None:
    with pytest.raises(EncodeError, match="expected a Signature"):
        codec.encode(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("args", ({1, 2},)),
        ("args", ((b"bytes",),)),  # bytes inside an argument (a top-level one is Go's []byte)
        ("args", [1]),
        ("headers", {"k": 1}),
        ("headers", FrozenDict._wrap({1: 2})),  # type: ignore[dict-item]
        ("name", 5),
        ("priority", True),
        ("priority", 1.0),
        ("immutable", 1),
        ("eta", "2024-01-01T00:00:00Z"),
        ("on_success", [Signature("x")]),
        ("on_error", (None,)),
        ("chord_callback", "x"),
    ],
)
def test_values_json_cannot_carry_are_encode_errors(codec: CodecModule, field: str, value: object) -> None:
    with pytest.raises(EncodeError):
        codec.encode(_with_field(Signature("t"), field, value))


def _nested(levels: int) -> object:
    value: object = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_nesting_up_to_max_depth_encodes(codec: CodecModule) -> None:
    # The message object is level 1 and Args level 2, so one argument may nest MAX_DEPTH - 2 levels.
    sig = Signature("t", [_nested(MAX_DEPTH - 2)])  # type: ignore[list-item]
    assert codec.encode(sig).count(b"[") == MAX_DEPTH - 1


def test_nesting_past_max_depth_is_an_encode_error(codec: CodecModule) -> None:
    with pytest.raises(EncodeError, match="nested deeper"):
        codec.encode(Signature("t", [_nested(MAX_DEPTH - 1)]))  # type: ignore[list-item]


def test_chain_deeper_than_max_depth_is_an_encode_error(codec: CodecModule) -> None:
    # Each step adds two levels (an OnSuccess array and the next object): 128 steps fit, 129 do not.
    assert codec.encode(chain(*[Signature("s") for _ in range(128)]).head)
    with pytest.raises(EncodeError, match="nested deeper"):
        codec.encode(chain(*[Signature("s") for _ in range(129)]).head)
