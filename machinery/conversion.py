"""Task arguments and results checked and converted against a function's annotations.

A message carries JSON; a typed task function expects ``float``, ``Point`` or ``list[Literal["a",
"b"]]``. ``ArgumentConverter`` turns the message's args into what each parameter's annotation asks
for, or raises ``ArgumentError`` naming the parameter and the expected type. The conversion itself
is msgspec's ``convert`` in strict mode: int, float, str, bool, None, lists, dicts, tuples,
``Literal``, enums, dataclasses and TypedDicts, nested, with an int accepted for a float and nothing
else coerced (no str -> int, no bool -> int).
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import typing
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import msgspec.inspect

from machinery.errors import ArgumentError, ResultTypeError
from machinery.jsonvalues import JSON, JSONInput, JSONValue, plain

__all__ = ["ArgumentConverter", "convert_result", "to_wire", "type_text"]

#: Annotations that take a message's value as it is: no conversion, no check.
_PASS_THROUGH: frozenset[object] = frozenset({Any, object, JSONValue, JSONInput, inspect.Parameter.empty})


def type_text(annotation: object) -> str:
    """How an annotation reads in an error: ``float``, ``list[int]``, ``Point``."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _checkable(annotation: object) -> object:
    """``annotation``, or ``Any`` when msgspec cannot convert to it (a class of the user's own that
    is not a dataclass, say): such an argument is passed as it came."""
    if annotation in _PASS_THROUGH:
        return Any
    try:
        msgspec.inspect.type_info(annotation)
    except TypeError:
        return Any
    return annotation


def resolved_hints(function: Callable[..., object], name: str) -> dict[str, object]:
    """The function's annotations as types. One that does not resolve here (a name imported only
    for type checkers, say) is left out with a warning: its values then arrive unchecked."""
    try:
        return typing.get_type_hints(function)
    except Exception:
        pass
    hints: dict[str, object] = {}
    namespace = getattr(function, "__globals__", {})
    for key, written in getattr(function, "__annotations__", {}).items():
        if not isinstance(written, str):
            hints[key] = written
            continue
        try:
            hints[key] = eval(written, namespace, {})  # the function's own annotation, as get_type_hints does
        except Exception as exc:
            what = "its return value" if key == "return" else f"argument {key!r}"
            warnings.warn(
                f"task {name}: annotation {written!r} does not resolve here ({type(exc).__name__}: {exc}); "
                f"{what} will not be checked or converted",
                stacklevel=2,
            )
    return hints


def _resolved(signature: inspect.Signature, hints: dict[str, object]) -> inspect.Signature:
    """``signature`` with its annotations resolved (``float``, not ``'float'``), for error texts."""
    if not hints:
        return signature
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()]
    return signature.replace(parameters=params, return_annotation=hints.get("return", signature.return_annotation))


def _convert(value: JSONValue, annotation: object) -> object:
    return msgspec.convert(plain(value), annotation, strict=True)


#: Annotations whose values arrive as they are when their type is exactly the annotation.
_SCALARS: frozenset[object] = frozenset({int, float, str, bool, bytes})


class ArgumentConverter:
    """The parameters of one task function: arity and each argument's type, checked on a worker
    before the function runs."""

    __slots__ = ("_max", "_min", "_name", "_signature", "_types", "_var_type")

    def __init__(self, function: Callable[..., object], name: str) -> None:
        self._name = name
        signature = inspect.signature(function)
        hints = resolved_hints(function, name)
        self._signature = _resolved(signature, hints)
        self._types: list[tuple[str, object]] = []
        self._var_type: tuple[str, object] | None = None
        self._min = 0
        self._max: int | None = 0
        for param in self._signature.parameters.values():
            hint = _checkable(hints.get(param.name, inspect.Parameter.empty))
            if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                self._types.append((param.name, hint))
                if param.default is param.empty:
                    self._min = len(self._types)
            elif param.kind is param.VAR_POSITIONAL:
                self._var_type = (param.name, hint)
            elif param.kind is param.KEYWORD_ONLY and param.default is param.empty:
                self._min = -1  # never callable from positional args: bind() says why
        self._max = len(self._types) if self._var_type is None else None

    @property
    def signature(self) -> inspect.Signature:
        return self._signature

    def _one(self, value: JSONValue, name: str, annotation: object) -> object:
        if annotation is Any or (type(value) is annotation and annotation in _SCALARS):
            return value
        try:
            return _convert(value, annotation)
        except msgspec.ValidationError as exc:
            raise ArgumentError(
                f"{self._name}: argument {name!r} expects {type_text(annotation)}, got {_describe(plain(value))} "
                f"({exc})"
            ) from None

    def convert(self, args: Sequence[JSONValue]) -> list[object]:
        """``args`` as the function's parameters want them; ``ArgumentError`` on a wrong count or
        type, naming the parameter and the expected type."""
        count = len(args)
        if self._min < 0 or count < self._min or (self._max is not None and count > self._max):
            try:
                self._signature.bind(*args)
            except TypeError as exc:
                raise ArgumentError(f"{self._name}{self._signature}: {exc}") from None
        types = self._types
        out = [self._one(value, *types[i]) for i, value in enumerate(args[: len(types)])]
        if count > len(types) and self._var_type is not None:
            name, annotation = self._var_type
            as_is = annotation is Any or annotation in _SCALARS
            for i, v in enumerate(args[len(types) :]):
                if as_is and (annotation is Any or type(v) is annotation):
                    out.append(v)
                else:
                    out.append(self._one(v, f"{name}[{i}]", annotation))
        return out


def to_wire(value: object, where: str = "argument") -> JSONInput:
    """A value a typed caller passes (a dataclass, an enum, a TypedDict, plain JSON...) as JSON."""
    if value is None or type(value) in (bool, int, float, str):
        return value  # type: ignore[return-value]
    try:
        return typing.cast(JSONInput, msgspec.to_builtins(value, str_keys=True))
    except TypeError as exc:
        raise TypeError(f"{where}: {type(value).__name__} cannot be sent as JSON ({exc})") from None


def result_to_wire(value: object) -> object:
    """A task's return value with dataclasses, enums and the like turned into JSON; anything else
    as it was (the worker then reports what JSON cannot carry)."""
    if value is None or type(value) in _SCALARS:
        return value
    if dataclasses.is_dataclass(value) or isinstance(value, (enum.Enum, list, tuple, dict)):
        try:
            return msgspec.to_builtins(value, str_keys=True)
        except TypeError:
            return value
    return value


def convert_result(value: JSON, result_type: object, task_uuid: str) -> Any:
    """A stored result as the task's declared return type, or ``ResultTypeError``."""
    if result_type in _PASS_THROUGH:
        return value
    try:
        return msgspec.convert(value, result_type, strict=True)
    except msgspec.ValidationError as exc:
        raise ResultTypeError(task_uuid, type_text(result_type), str(exc)) from None
