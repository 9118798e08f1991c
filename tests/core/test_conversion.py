"""Run-time conversion of task arguments against annotations, as properties: generated annotations
(scalars, Literal, enums, lists, dicts, tuples, dataclasses and TypedDicts, nested) with generated
values. Values of the annotation's JSON shape, frozen as a message delivers them, are accepted and
converted to the annotated type; values of another shape are an ``ArgumentError`` naming the
parameter and the expected type."""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import operator
from collections.abc import Callable
from typing import Any, Literal, TypedDict

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machinery import ArgumentError, JSONValue, freeze
from machinery.conversion import ArgumentConverter, to_wire, type_text
from machinery.task_function import bind_positional


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


#: JSON shapes of values; an annotation accepts some of them.
KINDS = ("int", "float", "str", "bool", "null", "array", "object")

finite = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), finite, st.text(max_size=5))
any_json = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
by_kind: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(),
    "float": finite.filter(lambda f: not f.is_integer()),
    "str": st.text(max_size=5),
    "bool": st.booleans(),
    "null": st.none(),
    "array": st.lists(json_scalars, max_size=3),
    "object": st.dictionaries(st.text(max_size=4), json_scalars, max_size=3),
}


@dataclasses.dataclass(frozen=True)
class Case:
    """An annotation, a strategy for JSON values it accepts, and the JSON shapes it accepts."""

    annotation: Any
    values: st.SearchStrategy[Any]
    kinds: frozenset[str]


_names = itertools.count()


def subscript(generic: Any, args: Any) -> Any:
    """``generic[args]`` built at run time (``list[int]``, ``Literal["a", "b"]``...)."""
    return operator.getitem(generic, args)


def leaves() -> st.SearchStrategy[Case]:
    literal_strs = st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=3, unique=True)
    return st.one_of(
        st.just(Case(int, st.integers(), frozenset({"int"}))),
        st.just(Case(float, st.integers() | finite, frozenset({"int", "float"}))),
        st.just(Case(str, st.text(max_size=5), frozenset({"str"}))),
        st.just(Case(bool, st.booleans(), frozenset({"bool"}))),
        st.just(Case(type(None), st.none(), frozenset({"null"}))),
        st.just(Case(Colour, st.sampled_from([c.value for c in Colour]), frozenset())),
        st.just(Case(Size, st.sampled_from([s.value for s in Size]), frozenset())),
        literal_strs.map(lambda xs: Case(subscript(Literal, tuple(xs)), st.sampled_from(xs), frozenset())),
    )


def containers(inner: st.SearchStrategy[Case]) -> st.SearchStrategy[Case]:
    def list_of(c: Case) -> Case:
        return Case(subscript(list, c.annotation), st.lists(c.values, max_size=3), frozenset({"array"}))

    def dict_of(c: Case) -> Case:
        return Case(subscript(dict, (str, c.annotation)), st.dictionaries(st.text(max_size=4), c.values, max_size=3),
                    frozenset({"object"}))

    def tuple_of(cs: list[Case]) -> Case:
        return Case(subscript(tuple, tuple(c.annotation for c in cs)), st.tuples(*(c.values for c in cs)).map(list),
                    frozenset({"array"}))

    def record_of(cs: list[Case], typed_dict: bool) -> Case:
        n = next(_names)
        fields = {f"f{i}": c for i, c in enumerate(cs)}
        annotation: Any
        if typed_dict:
            make_typed_dict: Any = TypedDict
            annotation = make_typed_dict(f"Generated{n}", {k: c.annotation for k, c in fields.items()})
        else:
            annotation = dataclasses.make_dataclass(f"Generated{n}", [(k, c.annotation) for k, c in fields.items()])
        values = st.fixed_dictionaries({k: c.values for k, c in fields.items()})
        return Case(annotation, values, frozenset({"object"}))

    return st.one_of(
        inner.map(list_of),
        inner.map(dict_of),
        st.lists(inner, min_size=1, max_size=3).map(tuple_of),
        st.builds(record_of, st.lists(inner, min_size=1, max_size=3), st.booleans()),
    )


cases = st.recursive(leaves(), containers, max_leaves=5)


def function_taking(annotation: Any) -> Callable[..., object]:
    def task(p: Any) -> object:
        return p

    task.__annotations__ = {"p": annotation, "return": object}
    return task


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON (an int sent for a float comes back as that float; tuples are arrays)."""
    a, b = (list(x) if isinstance(x, tuple) else x for x in (a, b))
    if isinstance(a, float) or isinstance(b, float):
        return not isinstance(a, bool) and not isinstance(b, bool) and math.isclose(a, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_values_of_the_annotated_shape_are_accepted_and_converted(data: st.DataObject) -> None:
    case = data.draw(cases)
    value = data.draw(case.values)
    converter = ArgumentConverter(function_taking(case.annotation), "task")
    (converted,) = converter.convert((freeze(value),))
    if dataclasses.is_dataclass(case.annotation):
        assert type(converted) is case.annotation
    assert same_json(msgspec.to_builtins(converted), value)
    assert same_json(to_wire(converted), value)  # and what a typed caller sends is that JSON again


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_values_of_another_shape_are_rejected_naming_the_parameter_and_the_type(data: st.DataObject) -> None:
    case = data.draw(cases)
    wrong_kinds = [k for k in KINDS if k not in case.kinds]
    if case.kinds == frozenset():  # Literal or enum: only its own values fit
        wrong_kinds = ["null", "array", "object", "bool"]
    wrong = data.draw(st.sampled_from(wrong_kinds).flatmap(lambda k: by_kind[k]))
    nested = data.draw(st.booleans())
    annotation = subscript(list, case.annotation) if nested else case.annotation
    sent = [wrong] if nested else wrong
    converter = ArgumentConverter(function_taking(annotation), "task")
    with pytest.raises(ArgumentError) as failed:
        converter.convert((freeze(sent),))
    assert str(failed.value).startswith(f"task: argument 'p' expects {type_text(annotation)}, got ")


def test_an_int_is_accepted_for_a_float_and_nothing_else_is_coerced() -> None:
    def task(x: float, n: int, s: str) -> None: ...

    converter = ArgumentConverter(task, "task")
    assert converter.convert((1, 2, "a")) == [1.0, 2, "a"]
    bad_args: list[tuple[JSONValue, ...]] = [
        ("1", 2, "a"), (True, 2, "a"), (1, 2.0, "a"), (1, True, "a"), (1, 2, 3), (1, "2", "a"),
    ]
    for bad in bad_args:
        with pytest.raises(ArgumentError):
            converter.convert(bad)


def test_unannotated_and_any_parameters_get_the_values_as_they_came() -> None:
    def task(a, b: Any, c: object, *rest):  # type: ignore[no-untyped-def]
        return a

    frozen = freeze({"k": [1, 2]})
    assert ArgumentConverter(task, "task").convert((frozen, frozen, frozen, frozen)) == [frozen] * 4


def test_variadic_parameters_are_checked_one_by_one() -> None:
    def total(*results: float) -> float:
        return sum(results)

    converter = ArgumentConverter(total, "total")
    assert converter.convert((1, 2.5)) == [1.0, 2.5]
    with pytest.raises(ArgumentError, match=r"^total: argument 'results\[1\]' expects float, got str 'x'"):
        converter.convert((1, "x"))


def test_keywords_become_positions_or_say_what_to_pass() -> None:
    def f(a: int, b: int = 0, c: int = 0, *, d: int = 0) -> None: ...

    import inspect

    sig = inspect.signature(f)
    assert bind_positional("f", sig, [1], {"c": 3, "b": 2}) == [1, 2, 3]
    assert bind_positional("f", sig, [], {"b": 2}, skip=1) == [2]  # a partial: a is the previous result
    with pytest.raises(TypeError, match="argument 'c' cannot be sent without 'b' before it"):
        bind_positional("f", sig, [1], {"c": 3})
    with pytest.raises(TypeError, match="parameter 'd' is keyword-only"):
        bind_positional("f", sig, [1], {"d": 4})
    with pytest.raises(TypeError, match="f: got an unexpected keyword argument 'z'"):
        bind_positional("f", sig, [1], {"z": 4})


def test_an_annotation_that_does_not_resolve_is_a_warning_and_the_others_are_still_checked() -> None:
    def task(x: float, p: Unresolvable) -> float:  # type: ignore[name-defined]  # noqa: F821
        return x

    task.__annotations__ = {"x": "float", "p": "Unresolvable", "return": "float"}
    with pytest.warns(UserWarning, match=r"task task: annotation 'Unresolvable' does not resolve here \(NameError"):
        converter = ArgumentConverter(task, "task")
    anything = freeze({"any": "thing"})
    assert converter.convert((1, anything)) == [1.0, anything]
    with pytest.raises(ArgumentError, match="argument 'x' expects float"):
        converter.convert(("1", None))
