"""Workflows built from signatures: chains, groups and chords.

They are plain values: building one sends nothing. ``App.send_task`` accepts a Signature, a
Chain, a Group or a Chord.
"""

from __future__ import annotations

import uuid as _uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from machinery.signature import Signature

__all__ = ["Chain", "Chord", "Group", "chain", "chord", "group"]


@dataclass(frozen=True, slots=True)
class Chain:
    """Tasks run one after another; each success sends the next, passing its result on unless
    the step that ran is immutable. ``head`` is the first step with the rest nested in
    ``on_success``; ``steps`` are the signatures as given."""

    steps: tuple[Signature, ...]
    head: Signature

    @property
    def last(self) -> Signature:
        """The final step, whose result is the chain's result."""
        return self.steps[-1]

    def __iter__(self) -> Iterator[Signature]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)


def chain(*signatures: Signature | Iterable[Signature]) -> Chain:
    """Chain ``signatures``: each one's success sends the next.

    Step ``i + 1`` is appended to step ``i``'s ``on_success``, so
    ``chain(add(1, 1), add(5, 6), multiply(4))`` computes ``((1 + 1) + (5 + 6)) * 4 = 52``.
    """
    steps: list[Signature] = []
    for item in signatures:
        if isinstance(item, Signature):
            steps.append(item)
        else:
            for sig in item:
                if not isinstance(sig, Signature):
                    raise TypeError(f"chain() takes Signatures, got {type(sig).__name__}")
                steps.append(sig)
    if not steps:
        raise ValueError("chain() needs at least one signature")
    head = steps[-1]
    for sig in reversed(steps[:-1]):
        head = replace(sig, on_success=(*sig.on_success, head))
    return Chain(tuple(steps), head)


@dataclass(frozen=True, slots=True)
class Group:
    """Tasks sent together to run in parallel; they share ``group_uuid``."""

    group_uuid: str
    tasks: tuple[Signature, ...]

    def __iter__(self) -> Iterator[Signature]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


def group(*signatures: Signature, group_uuid: str | None = None) -> Group:
    """Group ``signatures``: each gets the group's UUID and the group's size."""
    if not signatures:
        raise ValueError("group() needs at least one signature")
    for sig in signatures:
        if not isinstance(sig, Signature):
            raise TypeError(f"group() takes Signatures, got {type(sig).__name__}")
    gid = group_uuid or f"group_{_uuid.uuid4()}"
    count = len(signatures)
    return Group(gid, tuple(replace(s, group_uuid=gid, group_task_count=count) for s in signatures))


@dataclass(frozen=True, slots=True)
class Chord:
    """A group whose results, in the group's order, become the args of ``callback`` once every
    task of the group has succeeded."""

    group: Group
    callback: Signature


def chord(tasks: Group | Iterable[Signature], callback: Signature) -> Chord:
    """Run ``tasks`` as a group, then ``callback`` with their results prepended in group order."""
    grp = tasks if isinstance(tasks, Group) else group(*tasks)
    if not isinstance(callback, Signature):
        raise TypeError(f"chord() callback must be a Signature, got {type(callback).__name__}")
    members = tuple(replace(s, chord_callback=callback) for s in grp.tasks)
    return Chord(Group(grp.group_uuid, members), callback)
