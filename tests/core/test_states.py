"""A task state is its name wherever it is shown or stored, on every supported Python (it is a
``str`` enum that formats as ``enum.StrEnum`` does on 3.11+)."""

from __future__ import annotations

import json

import msgspec
import pytest

from machinery.states import FINAL_STATES, TaskState


@pytest.mark.parametrize("state", list(TaskState))
def test_a_state_shows_and_stores_as_its_bare_name(state: TaskState) -> None:
    name = state.name
    assert state.value == name
    assert (str(state), f"{state}", "%s" % state, format(state)) == (name,) * 4  # noqa: UP031
    assert f"{state:>10}" == f"{name:>10}"
    assert state == name and isinstance(state, str) and hash(state) == hash(name)
    assert json.dumps({"state": state}) == json.dumps({"state": name})
    assert msgspec.json.encode(state) == json.dumps(name).encode()
    assert TaskState(name) is state


def test_only_success_failure_and_revoked_are_final() -> None:
    final = [TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED]
    assert set(final) == FINAL_STATES
    assert [s for s in TaskState if s.is_final] == final
