"""Workflows built from signatures: chains, groups and chords, and the typed signatures that
``@app.task`` functions build.

They are plain values: building one sends nothing. ``App.send_task`` accepts a Signature, a typed
signature, a Chain, a Group or a Chord.

Typing: ``TypedSignature[A, R, N]`` is a task call that takes ``A`` from the step before it
(``NoResult``: it takes nothing, all its args are its own), returns ``R``, and passes ``N`` on to the
step after it (``R``, or ``NoResult`` when it is immutable). ``chain(...)`` and ``a | b`` accept a step
only where the previous step's ``N`` fits its ``A``, so mypy and pyright check a chain step by step.
Signatures built by name (``Signature("add", [1, 1])``) stay untyped: their chains give JSON values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, cast, overload

from typing_extensions import TypeVar, Unpack

from machinery.jsonvalues import JSON
from machinery.signature import Signature, SignatureOptions, time_ordered_uuid

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Chain", "Chord", "Group", "NoResult", "TypedSignature", "chain", "chord", "group"]

A_contra = TypeVar("A_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True, default=JSON)
N_co = TypeVar("N_co", covariant=True, default=Any)
R = TypeVar("R")
N = TypeVar("N")
R1 = TypeVar("R1")
N1 = TypeVar("N1")
R2 = TypeVar("R2")
N2 = TypeVar("N2")
R3 = TypeVar("R3")
N3 = TypeVar("N3")
R4 = TypeVar("R4")
N4 = TypeVar("N4")
R5 = TypeVar("R5")
N5 = TypeVar("N5")
R6 = TypeVar("R6")
N6 = TypeVar("N6")
R7 = TypeVar("R7")
N7 = TypeVar("N7")
R8 = TypeVar("R8")
N8 = TypeVar("N8")


class NoResult:
    """A type, never a value: in ``TypedSignature[A, R, N]``, ``A = NoResult`` is a step that takes
    no result from the step before it (all its args are its own: ``.s``/``.si``), and
    ``N = NoResult`` a step that passes none on (immutable: ``.si``)."""

    __slots__ = ()

    def __init__(self) -> None:
        raise TypeError("NoResult is a type for the type checker, not a value")


@dataclass(frozen=True, slots=True)
class TypedSignature(Generic[A_contra, R_co, N_co]):
    """A call of a typed task (from ``task.s(...)``, ``task.si(...)`` or ``task.partial(...)``):
    the ``Signature`` that travels, and the task's return type for reading its result.

    ``A``: what it takes from the step before it (``NoResult``: nothing); ``R``: what it returns;
    ``N``: what it passes to the step after it (``R``, or ``NoResult`` when immutable).
    """

    signature: Signature
    """The signature as it travels on the wire."""
    result_type: object = None
    """The task function's return annotation (``get()`` converts to it), or None when unknown."""

    @property
    def name(self) -> str:
        return self.signature.name

    @property
    def uuid(self) -> str:
        return self.signature.uuid

    def set(self, **options: Unpack[SignatureOptions]) -> Self:
        """A copy with ``options`` applied (``retry_count``, ``eta``, ``priority``, ``routing_key``...)."""
        return replace(self, signature=self.signature.replace(**options))

    def immutable(self) -> TypedSignature[A_contra, R_co, NoResult]:
        """This step made immutable: it still takes what it takes, but passes nothing on (for
        ``.partial(...)`` steps; ``.si(...)`` builds an immutable call directly)."""
        return TypedSignature(self.signature.replace(immutable=True), self.result_type)

    def link(self, *callbacks: TypedSignature[N_co, Any, Any] | Signature) -> Self:
        """A copy with ``callbacks`` sent when it succeeds (each gets the result first unless this
        step is immutable)."""
        return replace(self, signature=self.signature.link(*map(_untyped, callbacks)))

    def link_error(self, *callbacks: TypedSignature[str, Any, Any] | Signature) -> Self:
        """A copy with ``callbacks`` sent when it fails for good (each gets the error text first)."""
        return replace(self, signature=self.signature.link_error(*map(_untyped, callbacks)))

    def __or__(self, other: TypedSignature[N_co, R, N]) -> Chain[R, N]:
        """``a | b``: the chain of this step and ``other`` (which must take what this one passes on)."""
        return _build([self.signature, other.signature], other.result_type)


def _untyped(item: TypedSignature[Any, Any, Any] | Signature) -> Signature:
    if isinstance(item, TypedSignature):
        return item.signature
    if isinstance(item, Signature):
        return item
    raise TypeError(f"expected a Signature, got {type(item).__name__}")


@dataclass(frozen=True, slots=True)
class Chain(Generic[R_co, N_co]):
    """Tasks run one after another; each success sends the next, passing its result on unless
    the step that ran is immutable. ``head`` is the first step with the rest nested in
    ``on_success``; ``steps`` are the signatures as given. ``R`` is the last step's result type."""

    steps: tuple[Signature, ...]
    head: Signature
    result_type: object = None
    """The last step's return annotation when it is a typed task, else None."""

    @property
    def last(self) -> Signature:
        """The final step, whose result is the chain's result."""
        return self.steps[-1]

    def __iter__(self) -> Iterator[Signature]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __or__(self, other: TypedSignature[N_co, R, N]) -> Chain[R, N]:
        """``chain | step``: this chain with ``other`` appended."""
        return _build([*self.steps, other.signature], other.result_type)


# fmt: off
@overload
def chain(s1: TypedSignature[NoResult, R1, N1], /) -> Chain[R1, N1]: ...
@overload
def chain(s1: TypedSignature[NoResult, R1, N1], s2: TypedSignature[N1, R2, N2], /) -> Chain[R2, N2]: ...
@overload
def chain(
    s1: TypedSignature[NoResult, R1, N1], s2: TypedSignature[N1, R2, N2], s3: TypedSignature[N2, R3, N3], /
) -> Chain[R3, N3]: ...
@overload
def chain(
    s1: TypedSignature[NoResult, R1, N1], s2: TypedSignature[N1, R2, N2], s3: TypedSignature[N2, R3, N3],
    s4: TypedSignature[N3, R4, N4], /,
) -> Chain[R4, N4]: ...
@overload
def chain(
    s1: TypedSignature[NoResult, R1, N1], s2: TypedSignature[N1, R2, N2], s3: TypedSignature[N2, R3, N3],
    s4: TypedSignature[N3, R4, N4], s5: TypedSignature[N4, R5, N5], /,
) -> Chain[R5, N5]: ...
@overload
def chain(
    s1: TypedSignature[NoResult, R1, N1], s2: TypedSignature[N1, R2, N2], s3: TypedSignature[N2, R3, N3],
    s4: TypedSignature[N3, R4, N4], s5: TypedSignature[N4, R5, N5], s6: TypedSignature[N5, R6, N6], /,
) -> Chain[R6, N6]: ...
@overload
def chain(
    s1: TypedSignature[NoResult, R1, N1], s2: TypedSignature[N1, R2, N2], s3: TypedSignature[N2, R3, N3],
    s4: TypedSignature[N3, R4, N4], s5: TypedSignature[N4, R5, N5], s6: TypedSignature[N5, R6, N6],
    s7: TypedSignature[N6, R7, N7], /,
) -> Chain[R7, N7]: ...
@overload
def chain(
    s1: TypedSignature[NoResult, R1, N1], s2: TypedSignature[N1, R2, N2], s3: TypedSignature[N2, R3, N3],
    s4: TypedSignature[N3, R4, N4], s5: TypedSignature[N4, R5, N5], s6: TypedSignature[N5, R6, N6],
    s7: TypedSignature[N6, R7, N7], s8: TypedSignature[N7, R8, N8], /,
) -> Chain[R8, N8]: ...
@overload
def chain(*signatures: Signature | Iterable[Signature]) -> Chain: ...
# fmt: on


def chain(*signatures: Signature | TypedSignature[Any, Any, Any] | Iterable[Signature]) -> Chain[Any, Any]:
    """Chain ``signatures``: each one's success sends the next.

    Step ``i + 1`` is appended to step ``i``'s ``on_success``, so
    ``chain(add(1, 1), add(5, 6), multiply(4))`` computes ``((1 + 1) + (5 + 6)) * 4 = 52``.
    Typed steps (up to 8 here; ``a | b | ...`` for longer chains) are checked by the type checker:
    each step after a mutable one must take its result first (``.partial(...)``), a step after an
    immutable one takes all its args itself (``.s(...)``).
    """
    steps: list[Signature] = []
    result_type: object = None
    for item in signatures:
        if isinstance(item, TypedSignature):
            steps.append(item.signature)
            result_type = item.result_type
            continue
        result_type = None
        if isinstance(item, Signature):
            steps.append(item)
        else:
            for sig in item:
                if not isinstance(sig, Signature):
                    raise TypeError(f"chain() takes Signatures, got {type(sig).__name__}")
                steps.append(sig)
    if not steps:
        raise ValueError("chain() needs at least one signature")
    return _build(steps, result_type)


def _build(steps: list[Signature], result_type: object) -> Chain[Any, Any]:
    head = steps[-1]
    for sig in reversed(steps[:-1]):
        head = replace(sig, on_success=(*sig.on_success, head))
    return Chain(tuple(steps), head, result_type)


@dataclass(frozen=True, slots=True)
class Group(Generic[R_co]):
    """Tasks sent together to run in parallel; they share ``group_uuid``. ``R`` is their result type."""

    group_uuid: str
    tasks: tuple[Signature, ...]
    result_types: tuple[object, ...] = ()
    """Each task's return annotation (None where unknown), or () when none is typed."""

    def __iter__(self) -> Iterator[Signature]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


@overload
def group(*signatures: TypedSignature[NoResult, R, Any], group_uuid: str | None = None) -> Group[R]: ...
@overload
def group(*signatures: Signature, group_uuid: str | None = None) -> Group: ...


def group(*signatures: Signature | TypedSignature[Any, Any, Any], group_uuid: str | None = None) -> Group[Any]:
    """Group ``signatures``: each gets the group's UUID and the group's size. Typed signatures give
    a ``Group[R]``, whose sent result's ``get()`` is a ``list[R]``."""
    if not signatures:
        raise ValueError("group() needs at least one signature")
    sigs: list[Signature] = []
    types: list[object] = []
    for item in signatures:
        if isinstance(item, TypedSignature):
            sigs.append(item.signature)
            types.append(item.result_type)
        elif isinstance(item, Signature):
            sigs.append(item)
            types.append(None)
        else:
            raise TypeError(f"group() takes Signatures, got {type(item).__name__}")
    gid = group_uuid or f"group_{time_ordered_uuid()}"
    count = len(sigs)
    result_types = tuple(types) if any(t is not None for t in types) else ()
    return Group(gid, tuple(replace(s, group_uuid=gid, group_task_count=count) for s in sigs), result_types)


@dataclass(frozen=True, slots=True)
class Chord(Generic[R_co]):
    """A group whose results, in the group's order, become the args of ``callback`` once every
    task of the group has succeeded. ``R`` is the callback's result type."""

    group: Group[Any]
    callback: Signature
    result_type: object = None
    """The callback's return annotation when it is a typed task, else None."""


# fmt: off
@overload
def chord(
    tasks: Group[R] | Iterable[TypedSignature[NoResult, R, Any]], callback: TypedSignature[NoResult, R2, NoResult]
) -> Chord[R2]: ...
@overload
def chord(
    tasks: Group[R] | Iterable[TypedSignature[NoResult, R, Any]], callback: TypedSignature[R, R2, Any]
) -> Chord[R2]: ...
@overload
def chord(tasks: Group | Iterable[Signature], callback: Signature) -> Chord: ...
# fmt: on


def chord(
    tasks: Group[Any] | Iterable[Signature] | Iterable[TypedSignature[Any, Any, Any]],
    callback: Signature | TypedSignature[Any, Any, Any],
) -> Chord[Any]:
    """Run ``tasks`` as a group, then ``callback`` with their results prepended in group order
    (one argument per member; an immutable callback gets only its own args). A typed callback is
    built with ``.partial(...)`` and must take the members' result type: ``def total(*results:
    float)`` fits a group of float tasks."""
    # group() takes typed and untyped signatures alike at run time
    grp = tasks if isinstance(tasks, Group) else group(*cast("list[Signature]", list(tasks)))
    result_type: object = None
    if isinstance(callback, TypedSignature):
        result_type = callback.result_type
        callback = callback.signature
    if not isinstance(callback, Signature):
        raise TypeError(f"chord() callback must be a Signature, got {type(callback).__name__}")
    members = tuple(replace(s, chord_callback=callback) for s in grp.tasks)
    return Chord(Group(grp.group_uuid, members, grp.result_types), callback, result_type)
