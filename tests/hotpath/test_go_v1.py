"""Go Machinery v1 messages: typed arguments become plain values; unsupported types are refused."""

from __future__ import annotations

import json

import pytest

from machinery.errors import DecodeError
from machinery.jsonvalues import FrozenDict, JSONValue, freeze_mapping
from tests.hotpath.conftest import CodecModule
from tests.hotpath.strict import same_value

GO_V1_MESSAGE = (
    b'{"UUID":"task_5c3b","Name":"add","RoutingKey":"machinery_tasks","ETA":null,"GroupUUID":"",'
    b'"GroupTaskCount":0,"Args":[{"Name":"","Type":"int64","Value":3},{"Name":"","Type":"float64",'
    b'"Value":0.5}],"Headers":{},"Priority":0,"Immutable":false,"RetryCount":0,"RetryTimeout":0,'
    b'"OnSuccess":null,"OnError":null,"ChordCallback":null,"BrokerMessageGroupId":"",'
    b'"SQSReceiptHandle":"","StopTaskDeletionOnError":false,"IgnoreWhenTaskNotRegistered":false}'
)


def _arg(codec: CodecModule, typed: dict[str, object]) -> object:
    sig = codec.decode(b'{"Name":"t","Args":[' + json.dumps(typed).encode() + b"]}")
    assert len(sig.args) == 1
    return sig.args[0]


def test_design_message_decodes_with_plain_args(codec: CodecModule) -> None:
    sig = codec.decode(GO_V1_MESSAGE)
    assert (sig.uuid, sig.name, sig.routing_key) == ("task_5c3b", "add", "machinery_tasks")
    assert same_value(sig.args, (3, 0.5))


@pytest.mark.parametrize(
    ("type_name", "value", "expected"),
    [
        ("bool", True, True),
        ("int", -(2**63), -(2**63)),
        ("int8", -128, -128),
        ("int16", 32767, 32767),
        ("int32", -(2**31), -(2**31)),
        ("int64", 2**63 - 1, 2**63 - 1),
        ("uint", 2**64 - 1, 2**64 - 1),
        ("uint8", 255, 255),
        ("uint16", 0, 0),
        ("uint32", 2**32 - 1, 2**32 - 1),
        ("uint64", 2**64 - 1, 2**64 - 1),
        ("float32", 1, 1.0),
        ("float64", 0.25, 0.25),
        ("string", "héllo", "héllo"),
        ("[]int64", [1, 2], (1, 2)),
        ("[]string", ["a"], ("a",)),
        ("[]float64", [1, 2.5], (1.0, 2.5)),
        ("[][]uint8", [[1], []], ((1,), ())),
        ("[]int", None, ()),
    ],
)
def test_typed_args_become_plain_values(codec: CodecModule, type_name: str, value: object, expected: object) -> None:
    assert same_value(_arg(codec, {"Name": "x", "Type": type_name, "Value": value}), expected)


def test_typed_arg_without_name_is_read(codec: CodecModule) -> None:
    assert same_value(_arg(codec, {"Type": "int", "Value": 7}), 7)


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("int8", 128),
        ("int8", -129),
        ("uint8", 256),
        ("uint", -1),
        ("uint64", 2**64),
        ("int64", 2**63),
        ("[]uint8", [1, -1]),
    ],
)
def test_typed_int_out_of_range_is_a_decode_error(codec: CodecModule, type_name: str, value: object) -> None:
    with pytest.raises(DecodeError, match="out of range"):
        _arg(codec, {"Name": "", "Type": type_name, "Value": value})


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("int", "3"),
        ("int", 3.0),
        ("int", True),
        ("bool", 1),
        ("float64", True),
        ("float64", "1"),
        ("string", 1),
        ("[]int", 1),
        ("[]int", {}),
    ],
)
def test_typed_value_of_the_wrong_type_is_a_decode_error(codec: CodecModule, type_name: str, value: object) -> None:
    with pytest.raises(DecodeError, match="does not fit"):
        _arg(codec, {"Name": "", "Type": type_name, "Value": value})


@pytest.mark.parametrize("type_name", ["complex128", "map[string]int", "", "Int", "[]complex64", "interface{}"])
def test_unsupported_go_type_is_a_decode_error(codec: CodecModule, type_name: str) -> None:
    with pytest.raises(DecodeError, match="unsupported Go argument type"):
        _arg(codec, {"Name": "", "Type": type_name, "Value": [1]})


def test_huge_int_as_float_is_a_decode_error(codec: CodecModule) -> None:
    with pytest.raises(DecodeError, match="out of range"):
        _arg(codec, {"Type": "float64", "Value": 10**400})


@pytest.mark.parametrize(
    "obj",
    [
        {"Type": "int", "Value": 1, "Extra": 2},
        {"Type": 1, "Value": 2},
        {"Name": 1, "Type": "int", "Value": 2},
        {"Type": "int"},
        {"Name": "", "Value": 1},
    ],
)
def test_objects_of_other_shapes_stay_objects(codec: CodecModule, obj: dict[str, object]) -> None:
    assert same_value(_arg(codec, obj), freeze_mapping(obj, "obj"))


def test_typed_shape_is_only_read_at_the_top_of_args(codec: CodecModule) -> None:
    nested: dict[str, JSONValue] = {"Type": "int", "Value": 1}
    assert same_value(_arg(codec, {"k": nested}), FrozenDict({"k": FrozenDict(nested)}))
