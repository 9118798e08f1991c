"""A confirmed publish's follow-on declaring steps (``Resolved.then``, a Go delay queue declared
again): run once per confirm batch for each routing key, only for publishes RabbitMQ accepted."""

from __future__ import annotations

from typing import Any

from pika.spec import BasicProperties

from machinery.brokers.amqp_confirms import Confirms, Resolved, Waiter
from machinery.brokers.amqp_delays import Step


class _Channel:
    is_open = True

    def add_on_return_callback(self, _callback: Any) -> None:
        pass

    def basic_publish(self, *_args: Any) -> None:
        pass


def _confirms() -> tuple[Confirms, list[list[Step]]]:
    ran: list[list[Step]] = []
    confirms = Confirms(run_then=ran.append)
    confirms.open(_Channel(), None, None)  # type: ignore[arg-type]
    return confirms, ran


def _out(then: list[Step] | None, key: str = "delay.200.ex.q") -> Resolved:
    return Resolved("ex", key, b"{}", BasicProperties(delivery_mode=2), then=then)


def test_steps_of_one_queue_run_once_per_batch_after_its_confirm() -> None:
    confirms, ran = _confirms()
    steps: list[Step] = []
    other: list[Step] = []
    waiter = Waiter(4)
    confirms.send([_out(steps), _out([]), _out(None, "q"), _out(other, "delay.400.ex.q")], waiter)
    assert ran == []  # nothing before the confirm
    confirms.confirmed(4, True, False)
    assert len(ran) == 2 and ran[0] is steps and ran[1] is other
    assert waiter.done and waiter.accepted


def test_no_steps_for_a_refused_or_returned_publish() -> None:
    confirms, ran = _confirms()
    steps: list[Step] = []
    refused = Waiter(1)
    confirms.send([_out(steps)], refused)
    confirms.confirmed(1, False, True)  # nack
    assert ran == [] and refused.done and not refused.accepted
    returned = Waiter(1)
    out = _out(steps)
    confirms.send([out], returned)
    method: Any = type("Return", (), {"routing_key": out.routing_key, "exchange": out.exchange,
                                      "reply_text": "NO_ROUTE"})
    confirms.on_return(None, method, out.properties, out.body)  # type: ignore[arg-type]
    confirms.confirmed(2, False, False)
    assert ran == [] and returned.done and not returned.accepted
