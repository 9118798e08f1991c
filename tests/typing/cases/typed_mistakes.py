"""Typed-task mistakes: mypy --strict and pyright (strict) must report an error on each line marked
an E comment and on no other line."""
# pyright: strict

from __future__ import annotations

from machinery import AsyncResult, GroupResult, Signature, chain, chord, group

from .typed_tasks import Point, add, app, join, label, multiply, norm, ping, shout, total


def mistakes() -> None:
    add.s("1", 2)  # E: wrong argument type
    add.s(1)  # E: missing argument
    add.s(1, 2, 3)  # E: extra argument
    add.delay(1, "2")  # E: wrong argument type when sending
    add.s(1, z=2)  # E: no such keyword
    wrong: str = add.delay(1, 2).get()  # E: the result is a float
    handle: AsyncResult[str] = add.delay(1, 2)  # E: the handle is typed too
    norm.s((3, 4))  # E: a Point is expected
    add.signature(1, 2)  # E: signature() takes options only
    add.signature(retry_count="3")  # E: an option of the wrong type

    chain(add.s(1, 1), shout.partial())  # E: shout takes a str, add gives a float
    chain(add.s(1, 1), add.partial(5), label.partial("kg"), multiply.partial(2))  # E: label gives a str
    chain(add.s(1, 1), add.s(2, 3))  # E: a step after a mutable one must take its result (.partial)
    chain(add.si(1, 1), add.partial(5))  # E: nothing is passed on after an immutable step
    chain(add.partial(5), add.partial(1))  # E: a chain cannot start with a partial
    _ = add.s(1, 1) | shout.partial()  # E: the same with |
    _ = add.s(1, 1) | add.partial(5) | label.partial("kg") | add.partial(1)  # E: a str to a float
    _ = add.si(1, 1) | add.partial(5)  # E: immutable then partial, with |
    text: str = app.send_task(chain(add.s(1, 1), add.partial(5))).get()  # E: the chain gives a float

    values: list[str] = app.send_task(group(add.s(1, 1), add.s(2, 2))).get()  # E: a list of floats
    members: GroupResult[str] = app.send_task(group(add.s(1, 1)))  # E: a group of floats
    group(add.s(1, 1), add.partial(1))  # E: a group member must take all its args
    chord(group(add.s(1, 1), add.s(2, 2)), join.partial())  # E: join takes str results
    chord([add.s(1, 1)], add.s(1, 2))  # E: the callback receives the results
    total_text: str = app.send_task(chord([add.s(1, 1)], total.partial())).get()  # E: the chord gives a float
    ping.partial()  # E: ping has no parameter to take a result
    add.partial(x=1)  # E: x receives the previous result
    app.send_task(add.partial(1))  # E: a partial cannot be sent alone

    Signature("add", [1, 1], priority="high")  # E: untyped signatures are still checked
    print(wrong, handle, text, values, members, total_text, Point)
