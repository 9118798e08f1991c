"""Typed task functions: what ``@app.task`` makes of a function.

``TaskFunction[P, R]`` keeps the function's parameters ``P`` and return type ``R``, so the calls
that build and send it are checked by mypy and pyright: ``.s(...)``, ``.si(...)`` and ``.delay(...)``
take exactly ``P``, ``.partial(...)`` takes all but the first parameter (which the previous step's
result fills: its ``self`` is typed by the ``TakesResult`` protocol, which splits ``P`` into that
first parameter and the rest), and ``.delay(...).get()`` is an ``R``.

Keyword arguments are resolved to positions here, on the sending side, from the function's own
signature: messages carry positional args only (as Go Machinery's do), so any worker, Go or Python,
reads them the same way.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Generic, ParamSpec, Protocol, TypeVar, cast

from typing_extensions import Never, Unpack

from machinery.conversion import resolved_hints, to_wire
from machinery.jsonvalues import JSONInput
from machinery.signature import Signature, SignatureOptions
from machinery.workflows import NoResult, TypedSignature

if TYPE_CHECKING:
    from machinery.app import App
    from machinery.result import AsyncResult

__all__ = ["TakesResult", "TaskDecorator", "TaskFunction", "bind_positional"]

P = ParamSpec("P")
P2 = ParamSpec("P2")
R = TypeVar("R")
T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)


class TakesResult(Protocol[T_contra, P2, R_co]):
    """A task function with a first positional parameter (of type ``T``) that can receive the
    previous step's result, then the parameters ``P2``: what ``.partial`` needs."""

    def __call__(self, result: T_contra, /, *args: P2.args, **kwargs: P2.kwargs) -> R_co: ...


def bind_positional(
    name: str, signature: inspect.Signature | None, args: Sequence[object], kwargs: dict[str, object], skip: int = 0
) -> list[object]:
    """``args`` and ``kwargs`` as one positional list for the function's parameters after the first
    ``skip`` (which a previous step's result fills). A keyword that cannot become a position (a
    keyword-only parameter, or one after a parameter left to its default) is a ``TypeError`` that says
    what to pass instead."""
    if not kwargs:
        return list(args)
    if signature is None:
        raise TypeError(f"{name}: keyword arguments need a function with a signature; pass them by position")
    params = list(signature.parameters.values())
    if skip and params and params[0].kind is not params[0].VAR_POSITIONAL:
        params = params[skip:]  # (a ``*results`` parameter takes the previous result and these args alike)
    try:
        bound = signature.replace(parameters=params).bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None
    out: list[object] = []
    missing = ""
    for param in params:
        if param.kind is param.VAR_POSITIONAL:
            out.extend(bound.arguments.get(param.name, ()))
            continue
        if param.kind in (param.KEYWORD_ONLY, param.VAR_KEYWORD):
            if param.name in bound.arguments:
                raise TypeError(
                    f"{name}: parameter {param.name!r} is keyword-only, and messages carry positional "
                    "arguments only; make it a positional parameter"
                )
            continue
        if param.name in bound.arguments:
            if missing:
                raise TypeError(
                    f"{name}: argument {param.name!r} cannot be sent without {missing!r} before it "
                    f"(messages carry positional arguments only); pass {missing!r} too"
                )
            out.append(bound.arguments[param.name])
        elif not missing:
            missing = param.name
    return out


class TaskFunction(Generic[P, R]):
    """A function registered by ``@app.task``: still callable directly (in this process), and it
    builds typed signatures and sends itself by name.

    ``.s(*args)`` is a call whose result passes to the next step; ``.si(*args)`` one that passes
    nothing on (immutable); ``.delay(*args)`` sends it now. ``.signature(retry_count=..., eta=...)``
    gives this task with options that every call built from it carries.
    """

    __slots__ = ("__wrapped__", "_options", "_result_type", "_signature", "_takes_result", "app", "name")

    def __init__(
        self, app: App, name: str, function: Callable[P, R], options: SignatureOptions | None = None
    ) -> None:
        self.app = app
        self.name = name
        self.__wrapped__ = function
        self._options: SignatureOptions = options or {}
        try:
            self._signature: inspect.Signature | None = inspect.signature(function)
        except (TypeError, ValueError):
            self._signature = None
        self._takes_result = self._signature is None or any(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
            for p in self._signature.parameters.values()
        )
        with warnings.catch_warnings():  # the worker's converter warns about these, once
            warnings.simplefilter("ignore")
            self._result_type: object = resolved_hints(function, name).get("return")

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the function directly, in this process (no queue involved)."""
        return self.__wrapped__(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    @property
    def result_type(self) -> object:
        """The function's return annotation (results are converted to it), or None."""
        return self._result_type

    def _build(self, args: Sequence[object], kwargs: dict[str, object], *, immutable: bool, skip: int = 0) -> Signature:
        positional = bind_positional(self.name, self._signature, args, kwargs, skip)
        wire: list[JSONInput] = [to_wire(a, f"{self.name}: argument {i + 1}") for i, a in enumerate(positional)]
        options = self._options
        if immutable:
            return Signature(self.name, wire, immutable=True, **options)
        return Signature(self.name, wire, **options)

    def signature(self, *args: Never, **options: Unpack[SignatureOptions]) -> TaskFunction[P, R]:
        """This task with signature options (``retry_count``, ``retry_timeout``, ``eta``,
        ``priority``, ``routing_key``, ``headers``, ``on_success``, ``on_error``) that every call built
        from it carries: ``add.signature(retry_count=3).s(1, 2)``, ``.delay(1, 2)``."""
        if args:
            raise TypeError(
                f"{self.name}.signature() takes options only; pass the task's arguments to .s(...): "
                f"{self.name}.signature(retry_count=3).s(...)"
            )
        merged: SignatureOptions = {**self._options, **options}
        clone = type(self).__new__(type(self))
        clone.app, clone.name, clone.__wrapped__ = self.app, self.name, self.__wrapped__
        clone._options, clone._signature, clone._result_type = merged, self._signature, self._result_type
        clone._takes_result = self._takes_result
        return clone

    def s(self, *args: P.args, **kwargs: P.kwargs) -> TypedSignature[NoResult, R, R]:
        """A call of this task with all its args; its result passes to the next step of a chain."""
        return TypedSignature(self._build(args, kwargs, immutable=False), self._result_type)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> TypedSignature[NoResult, R, NoResult]:
        """An immutable call: its result is not passed to the step after it, which then takes all
        its args itself (``.s``)."""
        return TypedSignature(self._build(args, kwargs, immutable=True), self._result_type)

    def partial(self: TakesResult[T, P2, R], *args: P2.args, **kwargs: P2.kwargs) -> TypedSignature[T, R, R]:
        """A step whose first parameter receives the previous step's result (or a chord's results,
        one per member), with ``args`` after it: for ``multiply(x: float, y: float)``,
        ``multiply.partial(4)`` takes a float result."""
        task = cast("TaskFunction[..., R]", self)  # the protocol only types the call
        if not task._takes_result:
            raise TypeError(f"{task.name} has no positional parameter to receive a previous result")
        return TypedSignature(task._build(args, kwargs, immutable=False, skip=1), task._result_type)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Send this task with ``args`` now; its result handle, whose ``get()`` is an ``R``."""
        return self.app.send_task(self.s(*args, **kwargs))


class TaskDecorator(Protocol):
    """What ``@app.task(name=...)`` returns: registers the function it decorates."""

    def __call__(self, function: Callable[P, R], /) -> TaskFunction[P, R]: ...
