"""The Signature: one task call as it travels on the wire, immutable from end to end."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TypedDict

from typing_extensions import Unpack

from machinery.jsonvalues import EMPTY_DICT, FrozenDict, JSONInput, JSONValue, freeze, freeze_mapping
from machinery.timelimits import limit_headers

__all__ = ["MAX_PRIORITY", "Signature", "SignatureChanges", "SignatureOptions", "new_task_id", "time_ordered_uuid"]

#: Priorities run from 0 (the default, lowest) to this, as in AMQP's ``x-max-priority``.
MAX_PRIORITY = 255


#: The variant bits (``10``) and the 62 random bits of a version 7 UUID's last 64 bits.
_VARIANT = 0x8000_0000_0000_0000
_RAND_B = 0x3FFF_FFFF_FFFF_FFFF


def time_ordered_uuid() -> str:
    """A fresh version 7 UUID (RFC 9562) in its usual text form.

    The first 48 bits are the Unix time in milliseconds and the next 12 the fraction of that
    millisecond (steps of about 0.24 µs); the last 62 bits are random. Ids made in later steps of
    the clock sort later; ids of one step come in any order, and a wall clock set back makes later
    ids sort earlier (nothing relies on the order: it only keeps writes local). A store keyed by
    these ids (SQLite's results table, say) adds each row near the end of its index instead of at
    a random page: a batch of 32 results takes about a third of the time to commit that it takes
    with random UUIDs (``benchmarks/transport_sqlite.py``).
    """
    ms, sub_ms = divmod(time.time_ns(), 1_000_000)
    tail = int.from_bytes(os.urandom(8), "big") & _RAND_B | _VARIANT
    h = f"{ms:012x}7{sub_ms * 4096 // 1_000_000:03x}{tail:016x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_task_id() -> str:
    """A fresh task UUID in Go Machinery's form, ``task_<uuid>``; the UUID is a time-ordered
    version 7 (:func:`time_ordered_uuid`), which any reader of a UUID accepts."""
    return f"task_{time_ordered_uuid()}"


def _check_str(value: object, where: str) -> str:
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)
    raise TypeError(f"Signature.{where} must be str, got {type(value).__name__}")


def _check_int(value: object, where: str, low: int, high: int | None = None) -> int:
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"Signature.{where} must be int, got {type(value).__name__}")
        value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"Signature.{where} must be {bound}, got {value}")
    return value


def _check_signatures(value: object, where: str) -> tuple[Signature, ...]:
    if value is None:
        return ()
    if isinstance(value, Signature):
        raise TypeError(f"Signature.{where} must be a sequence of Signature, got one Signature")
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"Signature.{where} must be a sequence of Signature, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, Signature):
            raise TypeError(f"Signature.{where}[{i}] must be a Signature, got {type(item).__name__}")
    return tuple(value)


def _check_eta(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"Signature.eta must be a datetime or None, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("Signature.eta must be timezone-aware (for example datetime.now(timezone.utc))")
    return value.astimezone(timezone.utc)


@dataclass(frozen=True, slots=True, init=False)
class Signature:
    """A task call: the registered task's name, its arguments, options and callbacks.

    It is frozen all the way down: ``args`` is a tuple of frozen JSON values, ``headers`` a
    :class:`~machinery.FrozenDict`, callbacks tuples of Signatures. Construction validates every
    field and raises ``TypeError``/``ValueError`` naming the field. ``immutable`` decides whether the
    result of this task is prepended to the args of its ``on_success`` callbacks (False) or not (True).
    """

    name: str
    args: tuple[JSONValue, ...]
    routing_key: str
    immutable: bool
    on_success: tuple[Signature, ...]
    on_error: tuple[Signature, ...]
    uuid: str
    eta: datetime | None
    group_uuid: str
    group_task_count: int
    headers: FrozenDict
    priority: int
    retry_count: int
    retry_timeout: int
    chord_callback: Signature | None

    def __init__(
        self,
        name: str,
        args: Sequence[JSONInput] = (),
        *,
        routing_key: str = "",
        immutable: bool = False,
        on_success: Sequence[Signature] | None = (),
        on_error: Sequence[Signature] | None = (),
        uuid: str | None = None,
        eta: datetime | None = None,
        group_uuid: str = "",
        group_task_count: int = 0,
        headers: Mapping[str, JSONInput] | None = None,
        priority: int = 0,
        retry_count: int = 0,
        retry_timeout: int = 0,
        chord_callback: Signature | None = None,
    ) -> None:
        setter = object.__setattr__
        name = _check_str(name, "name")
        if not name:
            raise ValueError("Signature.name must be a non-empty task name")
        setter(self, "name", name)
        if isinstance(args, (str, bytes, bytearray)) or not isinstance(args, Sequence):
            raise TypeError(f"Signature.args must be a list or tuple, got {type(args).__name__}")
        setter(self, "args", tuple([freeze(a, f"Signature.args[{i}]") for i, a in enumerate(args)]))
        setter(self, "routing_key", _check_str(routing_key, "routing_key"))
        if type(immutable) is not bool:
            raise TypeError(f"Signature.immutable must be bool, got {type(immutable).__name__}")
        setter(self, "immutable", immutable)
        setter(self, "on_success", _check_signatures(on_success, "on_success"))
        setter(self, "on_error", _check_signatures(on_error, "on_error"))
        setter(self, "uuid", new_task_id() if uuid is None else _check_str(uuid, "uuid"))
        setter(self, "eta", _check_eta(eta))
        setter(self, "group_uuid", _check_str(group_uuid, "group_uuid"))
        setter(self, "group_task_count", _check_int(group_task_count, "group_task_count", 0))
        if headers is None or headers is EMPTY_DICT:
            frozen_headers = EMPTY_DICT
        elif isinstance(headers, Mapping):
            frozen_headers = freeze_mapping(headers, "Signature.headers")
        else:
            raise TypeError(f"Signature.headers must be a mapping, got {type(headers).__name__}")
        setter(self, "headers", frozen_headers)
        setter(self, "priority", _check_int(priority, "priority", 0, MAX_PRIORITY))
        setter(self, "retry_count", _check_int(retry_count, "retry_count", 0))
        setter(self, "retry_timeout", _check_int(retry_timeout, "retry_timeout", 0))
        if chord_callback is not None and not isinstance(chord_callback, Signature):
            raise TypeError(
                f"Signature.chord_callback must be a Signature or None, got {type(chord_callback).__name__}"
            )
        setter(self, "chord_callback", chord_callback)

    # -- derived signatures -------------------------------------------------------------------

    def replace(self, **changes: Unpack[SignatureChanges]) -> Signature:
        """A copy with ``changes`` applied (validated like the constructor): any field, e.g.
        ``sig.replace(retry_count=3, priority=5, eta=when)`` or ``sig.replace(immutable=True)``."""
        return replace(self, **changes)  # type: ignore[arg-type]  # __init__ freezes and checks them

    def with_args(self, args: Sequence[JSONInput]) -> Signature:
        """A copy with ``args`` in place of this signature's args."""
        return replace(self, args=args)  # type: ignore[arg-type]  # __init__ freezes them

    def with_result(self, result: JSONInput) -> Signature:
        """This callback as sent after a task returned ``result``: ``result`` prepended to args."""
        return replace(self, args=(freeze(result, "result"), *self.args))

    def link(self, *callbacks: Signature) -> Signature:
        """A copy with ``callbacks`` added to ``on_success``."""
        return replace(self, on_success=(*self.on_success, *callbacks))

    def link_error(self, *callbacks: Signature) -> Signature:
        """A copy with ``callbacks`` added to ``on_error``."""
        return replace(self, on_error=(*self.on_error, *callbacks))

    def delay_until(self, eta: datetime) -> Signature:
        """A copy that no worker runs before ``eta`` (timezone-aware)."""
        return replace(self, eta=eta)

    def countdown(self, seconds: float) -> Signature:
        """A copy that no worker runs before ``seconds`` from now."""
        return replace(self, eta=datetime.now(timezone.utc) + timedelta(seconds=seconds))

    def with_time_limits(self, time_limit: float | None = None, soft_time_limit: float | None = None) -> Signature:
        """A copy whose task is given up after ``time_limit`` seconds and gets
        ``SoftTimeLimitExceeded`` raised in it after ``soft_time_limit`` (overriding the task's own
        limits; carried in ``headers``, so the wire format is unchanged)."""
        return replace(self, headers={**self.headers, **limit_headers(time_limit, soft_time_limit)})  # type: ignore[arg-type]

    def walk(self) -> Iterable[Signature]:
        """This signature and every signature nested in it (callbacks, chord callback), depth first."""
        stack: list[Signature] = [self]
        while stack:
            sig = stack.pop()
            yield sig
            if sig.chord_callback is not None:
                stack.append(sig.chord_callback)
            stack.extend(reversed(sig.on_error))
            stack.extend(reversed(sig.on_success))


class SignatureOptions(TypedDict, total=False):
    """The options a signature carries besides its task name and args (every one optional), as
    taken by ``TaskFunction.signature(...)`` and ``TypedSignature.set(...)``."""

    routing_key: str
    """The queue to send to; "" means the config's ``default_queue``."""
    priority: int
    """0 (the default, lowest) to 255; higher runs first where the broker supports it."""
    retry_count: int
    """How many more times the task is tried when it raises (0: never)."""
    retry_timeout: int
    """Seconds between retries; 0 uses an exponential back-off capped by ``retry_backoff_max``."""
    eta: datetime | None
    """Timezone-aware: no worker runs the task before then."""
    headers: Mapping[str, JSONInput]
    """Extra JSON values carried with the message."""
    on_success: Sequence[Signature]
    """Signatures sent when the task succeeds (its result prepended unless it is immutable)."""
    on_error: Sequence[Signature]
    """Signatures sent when the task fails for good, the error text prepended."""


class SignatureChanges(SignatureOptions, total=False):
    """What ``Signature.replace`` may change: the options, and the other fields of a signature."""

    name: str
    args: Sequence[JSONInput]
    immutable: bool
    uuid: str | None
    """A task UUID; None gives a fresh one."""
    group_uuid: str
    group_task_count: int
    chord_callback: Signature | None
