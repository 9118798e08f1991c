"""Properties: round trips compared strictly, and the two implementations agreeing on every
input (same bytes, same values, same error class), valid or not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machinery.errors import DecodeError
from machinery.jsonvalues import JSONValue
from machinery.signature import Signature
from tests.hotpath import strategies
from tests.hotpath.conftest import C_CODEC, NO_C, PY_CODEC, CodecModule
from tests.hotpath.strict import same_value

EXAMPLES = settings(max_examples=150, deadline=None)


def _outcome(call: Callable[[], object]) -> tuple[str, object]:
    """``("ok", value)`` or ``("error", exception class)``."""
    try:
        return "ok", call()
    except Exception as exc:
        return "error", type(exc)


def _same_outcome(a: tuple[str, object], b: tuple[str, object]) -> bool:
    return a[0] == b[0] and (a[1] is b[1] if a[0] == "error" else same_value(a[1], b[1]))


@settings(max_examples=100, deadline=None)
@given(strategies.signatures)
def test_decode_of_encode_is_the_same_signature(encoder: CodecModule, decoder: CodecModule, sig: Signature) -> None:
    data = encoder.encode(sig)
    back = decoder.decode(data)
    assert same_value(back, sig)
    assert decoder.encode(back) == data


@EXAMPLES
@given(strategies.signatures, st.sampled_from(["args", "headers", "name", "uuid"]), strategies.unencodable_values)
def test_unencodable_signatures_are_encode_errors_alike(sig: Signature, field: str, bad: JSONValue) -> None:
    if field == "args":
        sig = sig.with_args([*sig.args, bad])
    elif field == "headers":
        sig = sig.replace(headers={**sig.headers, "k": bad})
    elif isinstance(bad, str):
        changes: dict[str, Any] = {field: sig.name + bad}
        sig = sig.replace(**changes)
    _check_encoders_agree(sig)


@EXAMPLES
@given(strategies.signatures)
def test_both_encoders_give_the_same_bytes(sig: Signature) -> None:
    _check_encoders_agree(sig)


@NO_C
@pytest.mark.c_extension
@EXAMPLES
@given(strategies.invalid_documents)
def test_both_decoders_agree_on_invalid_and_odd_input(data: bytes) -> None:
    assert C_CODEC is not None
    py = _outcome(lambda: PY_CODEC.decode(data))
    c = _outcome(lambda: C_CODEC.decode(data))
    assert _same_outcome(py, c), (data, py, c)
    assert py[0] == "ok" or py[1] is DecodeError
    # The fast parser alone may decline (then the twin decides) but never accepts more.
    fast = _outcome(lambda: C_CODEC._decode_strict(data))
    assert fast[0] == "error" or _same_outcome(fast, py), (data, fast, py)


@EXAMPLES
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_error(codec: CodecModule, data: bytes) -> None:
    try:
        codec.decode(data)
    except DecodeError:
        pass


@EXAMPLES
@given(strategies.mutated_documents())
def test_mutated_messages_raise_only_decode_error(codec: CodecModule, data: bytes) -> None:
    try:
        codec.decode(data)
    except DecodeError:
        pass


_number_items = st.one_of(
    st.integers(min_value=-(2**1100), max_value=2**1100),
    st.floats(),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
)


@NO_C
@pytest.mark.c_extension
@EXAMPLES
@given(st.one_of(st.lists(_number_items, max_size=6), st.lists(_number_items, max_size=6).map(tuple), _number_items))
def test_parse_number_args_agrees(args: object) -> None:
    assert C_CODEC is not None
    py = _outcome(lambda: PY_CODEC.parse_number_args(args))  # type: ignore[arg-type]
    c = _outcome(lambda: C_CODEC.parse_number_args(args))  # type: ignore[arg-type]
    assert py[0] == c[0], (args, py, c)
    if py[0] == "ok":
        assert repr(py[1]) == repr(c[1])
    else:
        assert py[1] is c[1]


def _check_encoders_agree(sig: Signature) -> None:
    py = _outcome(lambda: PY_CODEC.encode(sig))
    if C_CODEC is not None:
        c = _outcome(lambda: C_CODEC.encode(sig))
        assert _same_outcome(py, c), (sig, py, c)
        fast = _outcome(lambda: C_CODEC._encode_strict(sig))
        assert fast[0] == "error" or _same_outcome(fast, py), (sig, fast, py)
