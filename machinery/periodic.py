"""Periodic work: what runs when. ``Periodic`` pairs a name, a ``Schedule`` (a cron expression in a
time zone, or an interval) and the work to send (a Signature, chain, group or chord); each due run
sends a fresh copy of the work (new task and group UUIDs). ``App.periodic`` and the ``periodic:``
section of the config build them; ``machinery.beat`` sends them.

Cron expressions are read by cronsim (5 fields, or 6 with seconds first... as cronsim allows) in the
schedule's time zone (``zoneinfo``; UTC by default), so a daily ``30 2 * * *`` in Europe/Paris runs
once on the day clocks skip 02:30 (at 03:00) and once on the day they pass it twice. Intervals are
aligned to the Unix epoch (``every=60`` is due at each whole minute), so every scheduler computes
the same due times.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from machinery.errors import ConfigError
from machinery.jsonvalues import FrozenDict, thaw
from machinery.signature import Signature, new_task_id
from machinery.workflows import Chain, Chord, Group, chain, chord, group

__all__ = ["Periodic", "PeriodicWork", "Schedule", "fresh", "from_config", "schedule", "thaw_headers"]

PeriodicWork = Signature | Chain | Group | Chord


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a periodic entry is due: ``cron`` in ``timezone``, or every ``every`` seconds."""

    cron: str = ""
    every: float = 0.0
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if bool(self.cron) == bool(self.every):
            raise ValueError("a schedule is a cron expression or an interval (every=seconds), not both or neither")
        if self.every and (not math.isfinite(self.every) or self.every <= 0):
            raise ValueError(f"every must be a finite number of seconds > 0, got {self.every!r}")
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        if self.cron:
            try:
                CronSim(self.cron, datetime.now(zone))
            except CronSimError as exc:
                raise ValueError(f"bad cron expression {self.cron!r}: {exc}") from None

    def __str__(self) -> str:
        return f"cron {self.cron!r} ({self.timezone})" if self.cron else f"every {self.every:g}s"

    def after(self, moment: float) -> Iterator[float]:
        """The due times (seconds since the epoch) after ``moment``, in order."""
        if self.every:
            due = (math.floor(moment / self.every) + 1) * self.every
            while True:
                yield due
                due += self.every
        zone = ZoneInfo(self.timezone)
        for when in CronSim(self.cron, datetime.fromtimestamp(moment, zone)):
            yield when.timestamp()

    def latest(self, moment: float) -> float | None:
        """The last due time at or before ``moment`` (None when there is none in the past year)."""
        if self.every:
            return math.floor(moment / self.every) * self.every
        zone = ZoneInfo(self.timezone)
        start = datetime.fromtimestamp(moment, zone) + timedelta(seconds=1)
        for when in CronSim(self.cron, start, reverse=True):
            if when.timestamp() <= moment:
                return when.timestamp()
            break
        return None


def schedule(spec: str | float | timedelta | Schedule, timezone: str = "UTC") -> Schedule:
    """A ``Schedule`` from a cron expression, a number of seconds or a timedelta."""
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, timedelta):
        return Schedule(every=spec.total_seconds(), timezone=timezone)
    if isinstance(spec, bool) or not isinstance(spec, (str, int, float)):
        raise TypeError(f"a schedule is a cron string, seconds or a timedelta, got {type(spec).__name__}")
    if isinstance(spec, str):
        return Schedule(cron=spec.strip(), timezone=timezone)
    return Schedule(every=float(spec), timezone=timezone)


@dataclass(frozen=True, slots=True)
class Periodic:
    """One periodic entry: ``work`` sent at each due time of ``schedule``."""

    name: str
    schedule: Schedule
    work: PeriodicWork


def _fresh_signature(sig: Signature, tag: Mapping[str, str] | None = None) -> Signature:
    headers = sig.headers if tag is None else {**thaw_headers(sig), **tag}
    return sig.replace(
        uuid=new_task_id(),
        headers=headers,
        on_success=tuple(_fresh_signature(s) for s in sig.on_success),
        on_error=tuple(_fresh_signature(s) for s in sig.on_error),
        chord_callback=None if sig.chord_callback is None else _fresh_signature(sig.chord_callback),
    )


def thaw_headers(sig: Signature) -> dict[str, str]:
    """A signature's headers as a plain dict."""
    return {str(k): str(v) for k, v in sig.headers.items()}


def fresh(work: PeriodicWork, tag: Mapping[str, str] | None = None) -> PeriodicWork:
    """A copy of ``work`` with new task (and group) UUIDs, to send once more; ``tag`` headers are
    added to the signatures sent first (the signature, a chain's first step, each group member)."""
    if isinstance(work, Signature):
        return _fresh_signature(work, tag)
    if isinstance(work, Chain):
        first, *rest = work.steps
        return chain(_fresh_signature(first, tag), *(_fresh_signature(s) for s in rest))
    if isinstance(work, Group):
        return group(*(_fresh_signature(s, tag) for s in work.tasks))
    members = [_fresh_signature(s.replace(chord_callback=None), tag) for s in work.group.tasks]
    return chord(group(*members), _fresh_signature(work.callback))


# -- the ``periodic:`` section of the config --------------------------------------------------------


def _step(value: object, key: str) -> Signature:
    if not isinstance(value, dict) or not isinstance(value.get("task"), str):
        raise ConfigError(key, "a mapping with task (a name) and optional args, queue", value)
    args = value.get("args", [])
    queue = value.get("queue", "")
    if not isinstance(args, list) or not isinstance(queue, str):
        raise ConfigError(key, "args as a list and queue as a string", value)
    try:
        return Signature(str(value["task"]), args, routing_key=queue)
    except (TypeError, ValueError) as exc:
        raise ConfigError(key, "a valid task", str(exc)) from None


def _entry(name: str, spec: object) -> Periodic:
    key = f"periodic.{name}"
    if not isinstance(spec, dict):
        raise ConfigError(key, "a mapping (cron or every; task and args, or chain)", spec)
    unknown = set(spec) - {"cron", "every", "timezone", "task", "args", "queue", "chain"}
    if unknown:
        raise ConfigError(key, "only cron, every, timezone, task, args, queue, chain", sorted(unknown))
    cron, every, zone = spec.get("cron", ""), spec.get("every", 0), spec.get("timezone", "UTC")
    if not isinstance(cron, str) or isinstance(every, bool) or not isinstance(every, (int, float)) \
            or not isinstance(zone, str):
        raise ConfigError(key, "cron as a string, every as seconds, timezone as a name", spec)
    try:
        when = Schedule(cron=cron, every=float(every), timezone=zone)
    except ValueError as exc:
        raise ConfigError(key, "a valid schedule", str(exc)) from None
    steps = spec.get("chain")
    work: PeriodicWork
    if steps is not None:
        if not isinstance(steps, list) or not steps or "task" in spec:
            raise ConfigError(key, "chain as a non-empty list of steps (and no task beside it)", steps)
        work = chain(*(_step(s, f"{key}.chain[{i}]") for i, s in enumerate(steps)))
    else:
        work = _step({k: v for k, v in spec.items() if k in ("task", "args", "queue")}, key)
    return Periodic(name, when, work)


def from_config(section: FrozenDict) -> list[Periodic]:
    """The entries of a config's ``periodic`` section (``ConfigError`` naming a bad one)."""
    plain = thaw(section)
    if not isinstance(plain, dict):
        raise ConfigError("periodic", "a mapping of names to entries", plain)
    return [_entry(str(name), spec) for name, spec in plain.items()]
