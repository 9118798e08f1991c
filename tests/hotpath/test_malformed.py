"""Malformed input of every kind is a DecodeError, and nothing else."""

from __future__ import annotations

import pytest

from machinery.errors import DecodeError
from machinery.jsonvalues import MAX_DEPTH
from tests.hotpath.conftest import CodecModule


@pytest.mark.parametrize("data", ['{"Name":"t"}', None, 1, [b"{}"], {"Name": "t"}])
def test_non_bytes_are_decode_errors(codec: CodecModule, data: object) -> None:
    with pytest.raises(DecodeError, match="expected bytes"):
        codec.decode(data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [
        b'{"Name":"t\xff"}',
        b'{"Name":"t\xc0\xaf"}',  # overlong
        b'{"Name":"t\xed\xa0\x80"}',  # an encoded surrogate
        b'{"Name":"t\xe2\x82"}',  # truncated
        b'{"Name":"t\xf4\x90\x80\x80"}',  # past U+10FFFF
        b'{"Name":"t","Foo":"\xfe"}',  # under an unknown key too
        b'{"Name":"t"}\xff',
    ],
)
def test_invalid_utf8_is_a_decode_error(codec: CodecModule, data: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(data)


def test_a_byte_order_mark_is_a_decode_error(codec: CodecModule) -> None:
    with pytest.raises(DecodeError):
        codec.decode(b'\xef\xbb\xbf{"Name":"t"}')


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "{",
        '{"Name":"t"',
        '{"Name":"t",}',
        '{"Name":"t"} x',
        '{"Name":"t"}{}',
        "{'Name':'t'}",
        '{"Name" "t"}',
        '{"Name":"t",,"Args":[]}',
        '{Name:"t"}',
        '{"Name":"t","Args":[1,]}',
        '{"Name":"t","Args":[1 2]}',
        '{"Name":"t","Args":[NaN]}',
        '{"Name":"t","Args":[Infinity]}',
        '{"Name":"t","Args":[-Infinity]}',
        '{"Name":"t","Args":[1e400]}',
        '{"Name":"t","Foo":-1e400}',
        '{"Name":"t","Args":[01]}',
        '{"Name":"t","Args":[1.]}',
        '{"Name":"t","Args":[.5]}',
        '{"Name":"t","Args":[+1]}',
        '{"Name":"t","Args":[0x10]}',
        '{"Name":"t","Args":[1e]}',
        '{"Name":"t","Args":[-]}',
        '{"Name":"t","Args":[tru]}',
        '{"Name":"t","Args":[None]}',
        '{"Name":"t\x01"}',
        '{"Name":"t\n"}',
        '{"Name":"t\\x41"}',
        '{"Name":"t\\u12"}',
        '{"Name":"t\\u12g4"}',
        '{"Name":"t\\ud800\\u12"}',
        '{"Name":"t\\',
        '{"Name":"t"\x00}',
        '{"Name":"\\U0041"}',
    ],
)
def test_invalid_json_is_a_decode_error(codec: CodecModule, text: str) -> None:
    with pytest.raises(DecodeError):
        codec.decode(text.encode())


def test_an_int_past_the_digit_limit_is_a_decode_error(codec: CodecModule) -> None:
    with pytest.raises(DecodeError):
        codec.decode(b'{"Name":"t","Foo":' + b"9" * 5000 + b"}")


@pytest.mark.parametrize("text", ["[]", '"x"', "1", "null", "true", '[{"Name":"t"}]'])
def test_a_document_that_is_not_an_object_is_a_decode_error(codec: CodecModule, text: str) -> None:
    with pytest.raises(DecodeError):
        codec.decode(text.encode())


@pytest.mark.parametrize(
    "fields",
    [
        "",
        '"Name":""',
        '"Name":null',
        '"Name":1',
        '"Name":["t"]',
        '"Name":"t","Args":"x"',
        '"Name":"t","Args":{}',
        '"Name":"t","Headers":[]',
        '"Name":"t","Headers":"h"',
        '"Name":"t","Immutable":"yes"',
        '"Name":"t","Immutable":0',
        '"Name":"t","Priority":-1',
        '"Name":"t","Priority":256',
        '"Name":"t","Priority":1.5',
        '"Name":"t","Priority":"1"',
        '"Name":"t","Priority":true',
        '"Name":"t","Priority":1e2',
        '"Name":"t","RetryCount":-1',
        '"Name":"t","RetryTimeout":[]',
        '"Name":"t","GroupTaskCount":1.0',
        '"Name":"t","UUID":1',
        '"Name":"t","RoutingKey":false',
        '"Name":"t","GroupUUID":{}',
        '"Name":"t","ETA":1',
        '"Name":"t","OnSuccess":{}',
        '"Name":"t","OnSuccess":[1]',
        '"Name":"t","OnError":[{}]',
        '"Name":"t","ChordCallback":[]',
        '"Name":"t","ChordCallback":1',
        '"Name":"t","OnSuccess":[{"Name":"s","Priority":-1}]',
    ],
)
def test_wrong_field_types_are_decode_errors(codec: CodecModule, fields: str) -> None:
    with pytest.raises(DecodeError):
        codec.decode(("{" + fields + "}").encode())


@pytest.mark.parametrize(
    "fields",
    [
        '"Name":"t\\ud800"',
        '"Name":"t","Args":["\\udc00"]',
        '"Name":"t","Args":[{"\\ud800":1}]',
        '"Name":"t","Headers":{"k":["\\ud800x"]}',
        '"Name":"t","UUID":"\\ud83d"',
        '"Name":"t","RoutingKey":"\\ude00\\ud83d"',
    ],
)
def test_lone_surrogates_in_read_fields_are_decode_errors(codec: CodecModule, fields: str) -> None:
    with pytest.raises(DecodeError, match="lone surrogate"):
        codec.decode(("{" + fields + "}").encode())


@pytest.mark.parametrize(
    "data",
    [
        b'{"Name":"t","Args":[' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"]}",
        b'{"Name":"t","Headers":{"k":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}}",
        b'{"Name":"t","Foo":' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}",
        b'{"Name":"t","Foo":' + b"[" * 5000 + b"]" * 5000 + b"}",
        b"".join([b'{"Name":"s","OnSuccess":['] * 128) + b'{"Name":"s"}' + b"]}" * 128,
    ],
    ids=["args", "headers", "unknown-key", "far-past-the-recursion-limit", "chain-of-129"],
)
def test_nesting_past_max_depth_is_a_decode_error(codec: CodecModule, data: bytes) -> None:
    with pytest.raises(DecodeError, match="nested deeper"):
        codec.decode(data)
