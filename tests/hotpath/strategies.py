"""Hypothesis strategies: frozen JSON values, signatures with nested callbacks, and invalid input.

Typed-arg ambiguity: an ``Args`` item that is an object whose keys are exactly {Name, Type, Value}
or {Type, Value} (Type a str, Name a str) is read as a Go Machinery v1 typed argument, so such
items are left out of round-trip data: they do not come back as the object that was sent.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from machinery.jsonvalues import FrozenDict, JSONValue, thaw
from machinery.signature import MAX_PRIORITY, Signature

# Text without surrogates (those cannot be encoded); control characters, quotes and backslashes stay.
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=10)
counts = st.integers(min_value=0, max_value=2**70)

scalars: st.SearchStrategy[JSONValue] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)


def _frozen_dict(items: dict[str, JSONValue]) -> FrozenDict:
    return FrozenDict(items)


json_values: st.SearchStrategy[JSONValue] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(text, inner, max_size=4).map(_frozen_dict),
    ),
    max_leaves=12,
)


def is_typed_arg_shape(value: JSONValue) -> bool:
    """True for an object the decoder reads as a Go v1 typed argument."""
    if not isinstance(value, FrozenDict):
        return False
    keys = set(value)
    if keys not in ({"Name", "Type", "Value"}, {"Type", "Value"}):
        return False
    return isinstance(value["Type"], str) and ("Name" not in keys or isinstance(value["Name"], str))


arg_values = json_values.filter(lambda v: not is_typed_arg_shape(v))

offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
etas = st.none() | st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(timezone.utc) | offsets
)


@st.composite
def _signature(draw: st.DrawFn, children: st.SearchStrategy[Signature] | None = None) -> Signature:
    callbacks: st.SearchStrategy[list[Signature]] = st.just([]) if children is None else st.lists(children, max_size=2)
    return Signature(
        draw(names),
        draw(st.lists(arg_values, max_size=4)),
        routing_key=draw(text),
        immutable=draw(st.booleans()),
        on_success=draw(callbacks),
        on_error=draw(callbacks),
        uuid=draw(text),
        eta=draw(etas),
        group_uuid=draw(text),
        group_task_count=draw(counts),
        headers=draw(st.dictionaries(text, json_values, max_size=3)),
        priority=draw(st.integers(min_value=0, max_value=MAX_PRIORITY)),
        retry_count=draw(counts),
        retry_timeout=draw(counts),
        chord_callback=None if children is None else draw(st.none() | children),
    )


signatures: st.SearchStrategy[Signature] = st.recursive(_signature(), _signature, max_leaves=4)

# -- invalid and odd input --------------------------------------------------------------------

# Raw JSON-ish values (lists and dicts, as json.dumps takes them), for wrong field types.
raw_json: st.SearchStrategy[object] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)

WIRE_KEYS = (
    "UUID",
    "Name",
    "RoutingKey",
    "ETA",
    "GroupUUID",
    "GroupTaskCount",
    "Args",
    "Headers",
    "Priority",
    "Immutable",
    "RetryCount",
    "RetryTimeout",
    "OnSuccess",
    "OnError",
    "ChordCallback",
)

# Documents built from JSON tokens, most of them invalid.
_TOKENS = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        '"',
        "\\",
        "\\u",
        "d800",
        "dc00",
        "00e9",
        "null",
        "true",
        "false",
        "NaN",
        "Infinity",
        "-",
        "0",
        "1",
        "01",
        "1.5",
        "1e400",
        "-0",
        ".",
        "e",
        "E+",
        '"Name"',
        '"Args"',
        '"OnSuccess"',
        '"Headers"',
        '"Priority"',
        '"ETA"',
        '"x"',
        '""',
        "\x00",
        "\x1f",
        "é",
        "\ufeff",
    ]
)
token_documents = st.lists(_TOKENS, max_size=30).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass"))


@st.composite
def wrong_field_documents(draw: st.DrawFn) -> bytes:
    """A valid message with one field replaced by an arbitrary JSON value (or removed)."""
    sig = draw(signatures)
    obj = json.loads(_encode_plain(sig))
    key = draw(st.sampled_from(WIRE_KEYS))
    if draw(st.booleans()):
        obj[key] = draw(raw_json)
    else:
        obj.pop(key, None)
    return json.dumps(obj, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    """A valid message with a few bytes changed, removed or inserted."""
    data = bytearray(_encode_plain(draw(signatures)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        pos = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        op = draw(st.sampled_from(["set", "delete", "insert"]))
        byte = draw(st.sampled_from(b'{}[]",:\\u0123456789eE.-+ntf \x00\x7f\xc3\xa9\xed\xa0\x80\xff'))
        if op == "set" and data:
            data[pos] = byte
        elif op == "delete" and data:
            del data[pos]
        else:
            data.insert(pos, byte)
    return bytes(data)


def _encode_plain(sig: Signature) -> bytes:
    """The message for ``sig`` built with the stdlib only (no codec under test)."""
    return json.dumps(_plain(sig), ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def _plain(sig: Signature) -> dict[str, object]:
    return {
        "UUID": sig.uuid,
        "Name": sig.name,
        "RoutingKey": sig.routing_key,
        "ETA": None if sig.eta is None else sig.eta.isoformat(),
        "GroupUUID": sig.group_uuid,
        "GroupTaskCount": sig.group_task_count,
        "Args": thaw(sig.args),
        "Headers": thaw(sig.headers),
        "Priority": sig.priority,
        "Immutable": sig.immutable,
        "RetryCount": sig.retry_count,
        "RetryTimeout": sig.retry_timeout,
        "OnSuccess": [_plain(s) for s in sig.on_success] or None,
        "OnError": [_plain(s) for s in sig.on_error] or None,
        "ChordCallback": None if sig.chord_callback is None else _plain(sig.chord_callback),
    }


invalid_documents = st.one_of(token_documents, wrong_field_documents(), mutated_documents(), st.binary(max_size=64))

# Signatures that cannot be encoded: NaN/infinities, lone surrogates, huge ints.
unencodable_values: st.SearchStrategy[JSONValue] = st.one_of(
    st.sampled_from([float("nan"), float("inf"), float("-inf"), "\ud800", "a\udfff", 10**5000]),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),
)
