"""Signature: validated on construction, frozen all the way down."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from machinery import FrozenDict, Signature
from machinery.signature import MAX_PRIORITY, new_task_id, time_ordered_uuid


def test_args_are_frozen_into_tuples_and_frozen_dicts() -> None:
    sig = Signature("add", [1, [2, 3], {"k": [4]}])
    assert sig.args == (1, (2, 3), FrozenDict({"k": (4,)}))
    assert type(sig.args[1]) is tuple
    assert type(sig.args[2]) is FrozenDict


def test_fields_cannot_be_assigned() -> None:
    sig = Signature("add", [1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        sig.name = "other"  # type: ignore[misc]


def test_nested_values_cannot_be_mutated() -> None:
    sig = Signature("add", [{"k": [1]}], headers={"h": {"x": 1}})
    arg = sig.args[0]
    assert isinstance(arg, FrozenDict)
    with pytest.raises(TypeError):
        arg["k"] = 2  # type: ignore[index]
    with pytest.raises(AttributeError):
        arg._data = {}
    assert not hasattr(sig.headers, "__setitem__")


def test_input_list_is_copied_not_kept() -> None:
    args: list[object] = [1, [2]]
    sig = Signature("add", args)  # type: ignore[arg-type]
    args.append(3)
    assert sig.args == (1, (2,))


def test_signature_is_hashable_and_equal_by_value() -> None:
    a = Signature("add", [1, {"x": 2}], uuid="task_1")
    b = Signature("add", (1, {"x": 2}), uuid="task_1")
    assert a == b
    assert hash(a) == hash(b)


def test_each_signature_gets_a_task_uuid() -> None:
    a, b = Signature("add"), Signature("add")
    assert a.uuid.startswith("task_")
    assert a.uuid != b.uuid


def test_task_ids_are_version_7_uuids_whose_prefix_is_the_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    text = new_task_id()
    after = time.time_ns() // 1_000_000
    assert text.startswith("task_")
    parsed = uuid.UUID(text.removeprefix("task_"))
    assert str(parsed) == text.removeprefix("task_")
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after


def test_ids_made_later_sort_later_and_never_repeat() -> None:
    ids = [time_ordered_uuid() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    # Within one clock tick ids may come in any order; across ticks (1/4096 ms) they sort.
    early, late = ids[:100], ids[-100:]
    time.sleep(0.002)
    assert max(early) < min(late) < time_ordered_uuid()


def test_the_random_part_varies_within_one_millisecond() -> None:
    tails = {time_ordered_uuid()[-12:] for _ in range(1000)}
    assert len(tails) == 1000


@pytest.mark.parametrize("name", ["", None, 3])
def test_bad_name_is_refused(name: object) -> None:
    with pytest.raises((TypeError, ValueError), match="name"):
        Signature(name)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("priority", -1, ValueError),
        ("priority", MAX_PRIORITY + 1, ValueError),
        ("priority", 1.5, TypeError),
        ("priority", True, TypeError),
        ("retry_count", -1, ValueError),
        ("retry_timeout", "3", TypeError),
        ("group_task_count", -2, ValueError),
        ("immutable", 1, TypeError),
        ("routing_key", 5, TypeError),
        ("headers", [1], TypeError),
        ("on_success", [object()], TypeError),
        ("chord_callback", "x", TypeError),
        ("eta", "2026-01-01", TypeError),
        ("eta", datetime(2026, 1, 1), ValueError),
    ],
)
def test_bad_field_values_are_refused_naming_the_field(field: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=field):
        Signature("add", **{field: value})  # type: ignore[arg-type]


def test_bytes_args_are_kept_as_bytes() -> None:
    assert Signature("add", [1, bytearray(b"\x00\xff"), memoryview(b"ab")]).args == (1, b"\x00\xff", b"ab")


@pytest.mark.parametrize("bad", [object(), {1: "int key"}, {1, 2}, 1j])
def test_args_that_are_not_json_are_refused_naming_the_position(bad: object) -> None:
    with pytest.raises(TypeError, match=r"Signature\.args\[1\]"):
        Signature("add", [1, bad])  # type: ignore[list-item]


def test_args_must_be_a_sequence_not_a_string() -> None:
    with pytest.raises(TypeError, match="args"):
        Signature("add", "12")


def test_too_deep_args_are_refused() -> None:
    value: object = 1
    for _ in range(300):
        value = [value]
    with pytest.raises(ValueError, match="deeper"):
        Signature("add", [value])  # type: ignore[list-item]


def test_eta_is_kept_in_utc() -> None:
    eta = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    sig = Signature("add", eta=eta)
    assert sig.eta == eta
    assert sig.eta is not None and sig.eta.utcoffset() == timedelta(0)


def test_int_and_str_subclasses_become_base_types() -> None:
    import enum

    class Color(enum.IntEnum):
        RED = 1

    sig = Signature("paint", [Color.RED])
    assert type(sig.args[0]) is int


def test_with_result_prepends_the_result() -> None:
    sig = Signature("add", [5, 6])
    assert sig.with_result([2]).args == ((2,), 5, 6)
    assert sig.with_result(2).uuid == sig.uuid


def test_link_and_link_error_add_callbacks() -> None:
    cb, eb = Signature("cb"), Signature("eb")
    sig = Signature("add").link(cb).link_error(eb)
    assert sig.on_success == (cb,)
    assert sig.on_error == (eb,)


def test_countdown_sets_an_eta_in_the_future() -> None:
    before = datetime.now(timezone.utc)
    sig = Signature("add").countdown(10)
    assert sig.eta is not None and sig.eta >= before + timedelta(seconds=9)


def test_walk_visits_every_nested_signature() -> None:
    leaf = Signature("c")
    sig = Signature("a", on_success=[Signature("b", on_success=[leaf])], on_error=[Signature("e")])
    assert [s.name for s in sig.walk()] == ["a", "b", "c", "e"]
