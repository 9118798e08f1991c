"""parse_number_args: ints and floats become floats; anything else names its position and type."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import pytest

from machinery.errors import ArgumentError
from tests.hotpath.conftest import CodecModule


class Level(IntEnum):
    HIGH = 3


def test_ints_and_floats_become_floats(codec: CodecModule) -> None:
    result = codec.parse_number_args([1, 2.5, -3, 0])
    assert result == [1.0, 2.5, -3.0, 0.0]
    assert all(type(x) is float for x in result)


@pytest.mark.parametrize("args", [(1, 2), range(3), [], ()])
def test_any_sequence_is_accepted(codec: CodecModule, args: Sequence[object]) -> None:
    assert codec.parse_number_args(args) == [float(x) for x in args]  # type: ignore[arg-type]


def test_int_and_float_subclasses_are_accepted(codec: CodecModule) -> None:
    assert codec.parse_number_args([Level.HIGH]) == [3.0]


@pytest.mark.parametrize(
    ("args", "position", "type_name"),
    [([True], 0, "bool"), ([1, "2"], 1, "str"), ([1.0, 2, None], 2, "NoneType"), ([[1]], 0, "list"), ([{}], 0, "dict")],
)
def test_other_types_name_their_position_and_type(
    codec: CodecModule, args: list[object], position: int, type_name: str
) -> None:
    with pytest.raises(ArgumentError, match=rf"args\[{position}\]: .* got {type_name}") as caught:
        codec.parse_number_args(args)
    assert caught.value.position == position


def test_an_int_too_large_for_a_float_is_an_argument_error(codec: CodecModule) -> None:
    with pytest.raises(ArgumentError, match=r"args\[1\]: int .* too large"):
        codec.parse_number_args([1, 10**400])


def test_an_int_past_the_digit_limit_is_an_argument_error(codec: CodecModule) -> None:
    with pytest.raises(ArgumentError, match=r"args\[0\]"):
        codec.parse_number_args([10**5000])


@pytest.mark.parametrize("args", ["12", b"12", 5, None, {1, 2}])
def test_a_non_sequence_is_an_argument_error(codec: CodecModule, args: object) -> None:
    with pytest.raises(ArgumentError, match="expected a sequence of numbers"):
        codec.parse_number_args(args)  # type: ignore[arg-type]
