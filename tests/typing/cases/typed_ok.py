"""Correct use of typed tasks: mypy --strict and pyright (strict) must report nothing here, and
each ``reveal_type`` must show the type written after its R comment."""
# pyright: strict

from __future__ import annotations

from datetime import datetime, timezone

from typing_extensions import assert_type, reveal_type

from machinery import JSON, AsyncResult, ChainResult, ChordResult, GroupResult, Signature, chain, chord, group

from .typed_tasks import (
    Colour,
    Point,
    Reading,
    add,
    app,
    count,
    label,
    midpoint,
    multiply,
    norm,
    paint,
    ping,
    record,
    shout,
    total,
)


def use() -> None:
    # Signatures and sending: checked against the function's parameters.
    first = add.s(1, 1)
    reveal_type(first)  # R: TypedSignature[NoResult, float, float]
    result = add.delay(1, 2)
    reveal_type(result)  # R: AsyncResult[float]
    value: float = result.get(timeout=10)
    by_keyword = add.s(1, y=2)
    all_keywords = add.s(x=1, y=2)
    partial_keyword = multiply.partial(y=4)
    options = add.signature(retry_count=3, retry_timeout=5, eta=datetime.now(timezone.utc), priority=2, routing_key="q")
    sent: AsyncResult[float] = options.delay(1, 2)
    later = add.s(1, 1).set(retry_count=2, headers={"trace": "abc"})
    linked = add.s(1, 1).link(multiply.partial(2)).link_error(shout.partial())
    whole: AsyncResult[float] = app.send_task(linked)
    ints = count.s(3)

    # Chains, step by step: each partial takes the previous result first.
    c = chain(add.s(1, 1), add.partial(5), multiply.partial(4), label.partial("kg"))
    reveal_type(c)  # R: Chain[str, str]
    reveal_type(app.send_task(c))  # R: ChainResult[str]
    text: str = app.send_task(c).get()
    reveal_type(app.send_task(c).get())  # R: str
    piped = add.s(1, 1) | add.partial(5) | multiply.partial(4) | label.partial("kg")
    reveal_type(piped)  # R: Chain[str, str]
    long_chain = piped | shout.partial() | shout.partial() | shout.partial() | shout.partial() | shout.partial()
    last: ChainResult[str] = app.send_task(long_chain)
    widened = chain(count.s(1), add.partial(2))  # an int result is accepted where a float is expected
    after_immutable = chain(add.si(1, 1), add.s(2, 3), multiply.partial(2))
    reveal_type(after_immutable)  # R: Chain[float, float]
    ends_immutable = chain(add.si(1, 1), ping.s())
    no_args = ping.s()

    # Groups and chords.
    g = group(add.s(1, 1), add.s(2, 2))
    reveal_type(app.send_task(g))  # R: GroupResult[float]
    values: list[float] = app.send_task(g).get()
    reveal_type(app.send_task(g).get())  # R: list[float]
    members: GroupResult[float] = app.send_task(group(add.s(1, 1), multiply.s(2, 3)))
    ch = chord(g, total.partial())
    reveal_type(ch)  # R: Chord[float]
    summed: float = app.send_task(ch).get()
    from_list = chord([add.s(1, 1), add.s(2, 2)], total.partial(100))
    immutable_callback = chord(g, ping.si())
    chord_result: ChordResult[str] = app.send_task(immutable_callback)

    # Dataclasses, enums, Literal and TypedDicts as arguments and results.
    p: Point = midpoint.delay(Point(0, 0), Point(2, 4)).get()
    reveal_type(midpoint.delay(Point(0, 0), Point(2, 4)).get())  # R: Point
    distance: float = norm.delay(Point(3, 4)).get()
    chained_point = midpoint.s(Point(0, 0), Point(2, 2)) | norm.partial()
    colour: str = paint.delay(Colour.RED, "line").get()
    reading: Reading = record.delay({"sensor": "t1", "value": 20.5}).get()

    # Untyped signatures by name keep working and give plain JSON.
    untyped = app.send_task(Signature("add", [1, 1]))
    assert_type(untyped.get(), JSON)
    old_chain = app.send_task(chain(Signature("add", [1, 1]), Signature("multiply", [4])))
    old_group = app.send_task(group(Signature("add", [1, 1]), Signature("add", [2, 2]))).get()
    old_chord = app.send_task(chord([Signature("add", [1, 1])], Signature("add", [])))
    direct: float = add(1, 2)  # the function stays callable in-process

    print(value, by_keyword, all_keywords, partial_keyword, sent, later, whole, ints, text, last, widened)
    print(ends_immutable, no_args, values)
    print(members, summed, from_list, chord_result, p, distance, chained_point, colour, reading, old_chain)
    print(old_group, old_chord, direct)
