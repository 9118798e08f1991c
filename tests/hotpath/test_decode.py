"""Decoding well-formed messages: values, types, defaults, ETA, escapes, unknown and repeated keys."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from machinery.errors import DecodeError
from machinery.jsonvalues import EMPTY_DICT, MAX_DEPTH, FrozenDict
from machinery.signature import Signature
from tests.hotpath.conftest import CodecModule
from tests.hotpath.strict import same_value

README_MESSAGE = b"""{
    "Name": "add",
    "Args": [1, 1],
    "Immutable": false,
    "OnSuccess": null,
    "OnError": null
}"""


def test_the_readme_message_decodes(codec: CodecModule) -> None:
    sig = codec.decode(README_MESSAGE)
    assert (sig.name, sig.args, sig.immutable, sig.on_success, sig.on_error) == ("add", (1, 1), False, (), ())


def test_missing_fields_take_their_defaults(codec: CodecModule) -> None:
    sig = codec.decode(b'{"Name":"t"}')
    expected = Signature("t", uuid="")
    assert same_value(sig, expected)
    assert sig.uuid == ""


def test_null_fields_take_their_defaults(codec: CodecModule) -> None:
    keys = [
        "UUID", "RoutingKey", "ETA", "GroupUUID", "GroupTaskCount", "Args", "Headers", "Priority", "Immutable",
        "RetryCount", "RetryTimeout", "OnSuccess", "OnError", "ChordCallback",
    ]  # fmt: skip
    data = ("{" + ",".join(f'"{k}":null' for k in keys) + ',"Name":"t"}').encode()
    assert same_value(codec.decode(data), Signature("t", uuid=""))


def test_every_field_is_read(codec: CodecModule) -> None:
    data = (
        b'{"UUID":"u","Name":"n","RoutingKey":"rk","ETA":"2024-05-06T07:08:09.12Z","GroupUUID":"g",'
        b'"GroupTaskCount":3,"Args":["a",2.5,null,true,{"k":[1]}],"Headers":{"h":"v"},"Priority":255,'
        b'"Immutable":true,"RetryCount":2,"RetryTimeout":30,"OnSuccess":[{"Name":"s"}],"OnError":[{"Name":"e"}],'
        b'"ChordCallback":{"Name":"c"}}'
    )
    expected = Signature(
        "n",
        ["a", 2.5, None, True, {"k": [1]}],
        routing_key="rk",
        immutable=True,
        on_success=[Signature("s", uuid="")],
        on_error=[Signature("e", uuid="")],
        uuid="u",
        eta=datetime(2024, 5, 6, 7, 8, 9, 120000, timezone.utc),
        group_uuid="g",
        group_task_count=3,
        headers={"h": "v"},
        priority=255,
        retry_count=2,
        retry_timeout=30,
        chord_callback=Signature("c", uuid=""),
    )
    assert same_value(codec.decode(data), expected)


def test_values_are_frozen(codec: CodecModule) -> None:
    sig = codec.decode(b'{"Name":"t","Args":[[1,[2]],{"a":{"b":[]}}],"Headers":{"h":[true]}}')
    assert same_value(sig.args, ((1, (2,)), FrozenDict({"a": FrozenDict({"b": ()})})))
    assert same_value(sig.headers, FrozenDict({"h": (True,)}))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1),
        ("-0", 0),
        ("1.0", 1.0),
        ("-0.0", -0.0),
        ("1e2", 100.0),
        ("1E-2", 0.01),
        ("2.5e+3", 2500.0),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        ("1e-400", 0.0),
        ("true", True),
        ("null", None),
        ('"1"', "1"),
    ],
)
def test_numbers_keep_int_or_float(codec: CodecModule, text: str, value: object) -> None:
    assert same_value(codec.decode(b'{"Name":"t","Args":[' + text.encode() + b"]}").args, (value,))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02t03:04:05z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02T03:04:05.5Z", datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=timezone.utc)),
        ("2024-01-02T03:04:05.123456789Z", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)),
        ("2024-01-02T03:04:05+02:00", datetime(2024, 1, 2, 1, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02T03:04:05-05:30", datetime(2024, 1, 2, 8, 34, 5, tzinfo=timezone.utc)),
    ],
)
def test_eta_formats_are_read_as_utc(codec: CodecModule, text: str, value: datetime) -> None:
    eta = codec.decode(b'{"Name":"t","ETA":"' + text.encode() + b'"}').eta
    assert eta == value
    assert eta is not None and eta.tzinfo == timezone.utc


@pytest.mark.parametrize(
    "text",
    ["2024-13-01T00:00:00Z", "yesterday", "2024-01-02 03:04:05Z", "2024-01-02T03:04:05", "2024-01-02T03:04:05+24:00"],
)
def test_invalid_eta_is_a_decode_error(codec: CodecModule, text: str) -> None:
    with pytest.raises(DecodeError, match="ETA"):
        codec.decode(b'{"Name":"t","ETA":"' + text.encode() + b'"}')


@pytest.mark.parametrize(
    ("escaped", "text"),
    [
        ("\\u00e9", "é"),
        ("\\ud83d\\ude00", "😀"),
        ("\\/", "/"),
        ('\\"', '"'),
        ("\\\\", "\\"),
        ("\\b\\f\\n\\r\\t", "\b\f\n\r\t"),
        ("\\u0000", "\x00"),
        ("\\u00E9", "é"),
        ("é€😀", "é€😀"),
        ("\x7f", "\x7f"),
    ],
)
def test_string_escapes_are_decoded(codec: CodecModule, escaped: str, text: str) -> None:
    data = ('{"Name":"t","Args":["' + escaped + '"],"Headers":{"' + escaped + '":1}}').encode()
    sig = codec.decode(data)
    assert sig.args == (text,)
    assert list(sig.headers) == [text]


def test_escaped_keys_are_matched_after_decoding(codec: CodecModule) -> None:
    assert codec.decode(b'{"N\\u0061me":"t","\\u0041rgs":[1]}').args == (1,)


def test_unknown_keys_are_ignored(codec: CodecModule) -> None:
    data = b'{"Name":"t","Foo":{"bar":[1,2,{"x":null}]},"SQSReceiptHandle":"","name":5,"Args ":"x"}'
    assert same_value(codec.decode(data), Signature("t", uuid=""))


def test_a_lone_surrogate_under_an_unknown_key_is_ignored(codec: CodecModule) -> None:
    assert codec.decode(b'{"Name":"t","Foo":"\\ud800","\\udc00":1}').name == "t"


def test_repeated_keys_take_the_last_value(codec: CodecModule) -> None:
    sig = codec.decode(b'{"Name":"a","Priority":"bad","Name":"b","Priority":3,"Headers":{"k":1,"j":2,"k":3}}')
    assert (sig.name, sig.priority) == ("b", 3)
    assert list(sig.headers.items()) == [("k", 3), ("j", 2)]


def test_whitespace_is_allowed_between_tokens(codec: CodecModule) -> None:
    data = b' \t\r\n{ "Name" : "t" , "Args" : [ 1 , { "a" : [ ] } ] , "OnSuccess" : [ { "Name" : "s" } ] } \n'
    sig = codec.decode(data)
    assert sig.args == (1, FrozenDict({"a": ()}))
    assert sig.on_success[0].name == "s"


def test_empty_headers_are_the_empty_frozen_dict(codec: CodecModule) -> None:
    assert codec.decode(b'{"Name":"t","Headers":{}}').headers == EMPTY_DICT


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_bytes_like_input_is_accepted(codec: CodecModule, kind: type[bytearray] | type[memoryview]) -> None:
    assert codec.decode(kind(b'{"Name":"t"}')).name == "t"  # type: ignore[arg-type]


def test_nesting_up_to_max_depth_decodes(codec: CodecModule) -> None:
    levels = MAX_DEPTH - 2  # the message object and Args take two levels
    data = b'{"Name":"t","Args":[' + b"[" * levels + b"]" * levels + b'],"Foo":' + b"{}" + b"}"
    assert codec.decode(data).name == "t"


def test_a_chain_of_128_steps_decodes(codec: CodecModule) -> None:
    data = b"".join([b'{"Name":"s","OnSuccess":['] * 127) + b'{"Name":"s"}' + b"]}" * 127
    sig = codec.decode(data)
    assert len(list(sig.walk())) == 128
