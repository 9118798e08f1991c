"""The compiled module's own paths: its writer and parser handle every well-formed message
without the twin, and rare shapes are handed to the twin on purpose."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from machinery.errors import DecodeError
from machinery.signature import Signature
from tests.hotpath import strategies
from tests.hotpath.conftest import PY_CODEC, CompiledCodecModule
from tests.hotpath.strict import same_value
from tests.hotpath.test_go_v1 import GO_V1_MESSAGE

pytestmark = pytest.mark.c_extension


@settings(max_examples=150, deadline=None)
@given(strategies.signatures)
def test_fast_paths_round_trip_generated_signatures(compiled: CompiledCodecModule, sig: Signature) -> None:
    data = compiled._encode_strict(sig)
    assert data == PY_CODEC.encode(sig)
    assert same_value(compiled._decode_strict(data), sig)


def test_fast_parser_reads_a_go_v1_message(compiled: CompiledCodecModule) -> None:
    assert same_value(compiled._decode_strict(GO_V1_MESSAGE), PY_CODEC.decode(GO_V1_MESSAGE))


def test_fast_parser_reads_escapes_and_eta(compiled: CompiledCodecModule) -> None:
    data = b'{"N\\u0061me":"t\\u00e9\\ud83d\\ude00","ETA":"2024-01-02T03:04:05+01:00","Args":[1.5e3,-0]}'
    assert same_value(compiled._decode_strict(data), PY_CODEC.decode(data))


@pytest.mark.parametrize(
    "data",
    [
        b'{"Name":"t","Priority":"bad","Priority":1}',  # an invalid value repeated away
        b'{"Name":"t","Foo":"\\ud800"}',  # a lone surrogate nobody reads
    ],
)
def test_rare_valid_shapes_are_handed_to_the_twin(compiled: CompiledCodecModule, data: bytes) -> None:
    with pytest.raises(DecodeError):
        compiled._decode_strict(data)
    assert same_value(compiled.decode(data), PY_CODEC.decode(data))
