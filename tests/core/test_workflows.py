"""chain, group and chord build nested callbacks and the group bookkeeping."""

from __future__ import annotations

import uuid

import pytest

from machinery import Signature, chain, chord, group


def example_chain_steps() -> tuple[Signature, Signature, Signature]:
    return Signature("add", [1, 1]), Signature("add", [5, 6]), Signature("multiply", [4])


def test_chain_nests_each_step_in_the_previous_on_success() -> None:
    t1, t2, t3 = example_chain_steps()
    c = chain(t1, t2, t3)
    assert c.head.name == "add" and c.head.args == (1, 1)
    (second,) = c.head.on_success
    assert second.args == (5, 6)
    (third,) = second.on_success
    assert third == t3
    assert c.last == t3
    assert c.steps == (t1, t2, t3)


def test_chain_keeps_existing_callbacks_before_the_next_step() -> None:
    cb = Signature("notify")
    c = chain(Signature("a", on_success=[cb]), Signature("b"))
    assert [s.name for s in c.head.on_success] == ["notify", "b"]


def test_chain_keeps_step_uuids_so_results_can_be_found() -> None:
    t1, t2, t3 = example_chain_steps()
    c = chain(t1, t2, t3)
    assert [s.uuid for s in c.head.walk()] == [t1.uuid, t2.uuid, t3.uuid]


def test_chain_accepts_an_iterable() -> None:
    assert len(chain(list(example_chain_steps()))) == 3


def test_empty_chain_is_refused() -> None:
    with pytest.raises(ValueError):
        chain()


def test_chain_refuses_non_signatures() -> None:
    with pytest.raises(TypeError):
        chain([Signature("a"), "b"])  # type: ignore[list-item]


def test_group_stamps_uuid_and_count_on_every_member() -> None:
    g = group(Signature("a"), Signature("b"), Signature("c"))
    assert {s.group_uuid for s in g} == {g.group_uuid}
    assert {s.group_task_count for s in g} == {3}
    assert g.group_uuid.startswith("group_")
    assert uuid.UUID(g.group_uuid.removeprefix("group_")).version == 7


def test_chord_sets_the_callback_on_every_member() -> None:
    cb = Signature("sum")
    ch = chord([Signature("a"), Signature("b")], cb)
    assert all(s.chord_callback == cb for s in ch.group)
    assert ch.callback == cb
