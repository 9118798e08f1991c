"""Typed tasks shared by the typing cases: what a user's tasks module looks like."""
# pyright: strict

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal, TypedDict

from machinery import App, Config

app = App(Config(broker_url="memory://typing-cases", result_backend="memory://typing-cases"))


@dataclass(frozen=True)
class Point:
    x: float
    y: float


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Reading(TypedDict):
    sensor: str
    value: float


@app.task
def add(x: float, y: float) -> float:
    return x + y


@app.task
def multiply(x: float, y: float) -> float:
    return x * y


@app.task
def label(value: float, unit: str) -> str:
    return f"{value} {unit}"


@app.task
def shout(text: str) -> str:
    return text.upper()


@app.task
def count(n: int) -> int:
    return n


@app.task
def total(*results: float) -> float:
    return sum(results)


@app.task
def join(*words: str) -> str:
    return " ".join(words)


@app.task
def norm(p: Point) -> float:
    return float((p.x**2 + p.y**2) ** 0.5)


@app.task
def midpoint(a: Point, b: Point) -> Point:
    return Point((a.x + b.x) / 2, (a.y + b.y) / 2)


@app.task
def paint(colour: Colour, mode: Literal["fill", "line"] = "fill") -> str:
    return f"{colour.value}/{mode}"


@app.task
def record(reading: Reading) -> Reading:
    return reading


@app.task
def ping() -> str:
    return "pong"
