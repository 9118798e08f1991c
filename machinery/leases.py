"""A worker's lease renewal: one thread that renews, every third of the visibility timeout, the
broker's leases on every delivery the worker holds (fetched, running, or finished and being
settled), so that none is delivered again to another consumer while this one still has it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from machinery.brokers.base import Broker, Delivery

__all__ = ["LeaseRenewer"]

log = logging.getLogger("machinery.worker")


class LeaseRenewer:
    """Renews the leases of ``held()`` on ``broker`` from ``start()`` until ``stop()``."""

    def __init__(self, broker: Broker, visibility_timeout: float, held: Callable[[], Sequence[Delivery]]) -> None:
        self._broker = broker
        self._interval = max(visibility_timeout / 3.0, 0.05)
        self._held = held
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="machinery-leases", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Renew no more (the worker settled or gave back everything it held); waits for the thread."""
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(self._interval):
            held = self._held()
            if held:
                try:
                    self._broker.extend(held)
                except Exception:
                    log.exception("renewing %d leases failed", len(held))
