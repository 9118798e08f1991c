"""The worker's lease renewal (``leases.LeaseRenewer``): what is held is renewed every third of
the visibility timeout, a failed renewal is logged and the next one still comes, and ``stop``
ends the thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import cast

import pytest

from machinery.brokers.base import Broker, Delivery
from machinery.leases import LeaseRenewer


class ExtendingBroker:
    def __init__(self, fail_first: int = 0) -> None:
        self.extended: list[list[Delivery]] = []
        self.fail_first = fail_first
        self.called = threading.Semaphore(0)

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        self.called.release()
        if self.fail_first:
            self.fail_first -= 1
            raise OSError("the broker went away")
        self.extended.append(list(deliveries))


def delivery(tag: int) -> Delivery:
    return Delivery(queue="q", body=b"{}", tag=tag)


def test_what_is_held_is_renewed_until_stopped() -> None:
    broker = ExtendingBroker()
    held: list[Delivery] = []
    renewer = LeaseRenewer(cast(Broker, broker), 0.15, lambda: list(held))  # every 0.05 s
    renewer.start()
    held.append(delivery(1))
    assert broker.called.acquire(timeout=5)
    renewer.stop()
    count = len(broker.extended)
    assert broker.extended and all([d.tag for d in batch] == [1] for batch in broker.extended)
    assert not renewer._thread.is_alive()
    time.sleep(0.2)  # four intervals
    assert len(broker.extended) == count  # nothing after stop


def test_nothing_held_asks_the_broker_nothing() -> None:
    broker = ExtendingBroker()
    asked = threading.Event()

    def held() -> list[Delivery]:
        asked.set()
        return []

    renewer = LeaseRenewer(cast(Broker, broker), 0.15, held)
    renewer.start()
    assert asked.wait(5)
    renewer.stop()
    assert broker.extended == []


def test_a_failed_renewal_is_logged_and_the_next_one_comes(caplog: pytest.LogCaptureFixture) -> None:
    broker = ExtendingBroker(fail_first=1)
    renewer = LeaseRenewer(cast(Broker, broker), 0.15, lambda: [delivery(7)])
    with caplog.at_level(logging.ERROR, logger="machinery.worker"):
        renewer.start()
        assert broker.called.acquire(timeout=5) and broker.called.acquire(timeout=5)
        renewer.stop()
    assert "renewing 1 leases failed" in caplog.text
    assert broker.extended and broker.extended[0][0].tag == 7
