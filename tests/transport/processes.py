"""Process bodies for the multi-process SQLite tests (module-level, so "spawn" can import them)."""

from __future__ import annotations

import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

from machinery.brokers.base import OutgoingMessage
from machinery.brokers.sqlite import SQLiteBroker


def produce(db: str, queue: str, producer: int, count: int) -> None:
    """Publish ``count`` messages named ``<producer>-<i>``, singly and in small batches."""
    broker = SQLiteBroker(db)
    try:
        i = 0
        while i < count:
            if i % 2:
                broker.publish(queue, f"{producer}-{i}".encode())
                i += 1
            else:
                batch = [OutgoingMessage(queue, f"{producer}-{j}".encode()) for j in range(i, min(i + 5, count))]
                broker.publish_many(batch)
                i += len(batch)
    finally:
        broker.close()


def consume(db: str, queue: str, producers_done: Event, received: Queue[list[str]]) -> None:
    """Consume and ack until the producers are done and the queue is empty; report the bodies."""
    broker = SQLiteBroker(db)
    bodies: list[str] = []
    try:
        while True:
            batch = broker.fetch([queue], 8, 0.5)
            for delivery in batch:
                bodies.append(delivery.body.decode())
                broker.ack(delivery)
            if not batch and producers_done.is_set():
                break
    finally:
        broker.close()
        received.put(bodies)


def hold_leases(db: str, queue: str, count: int, visibility_timeout: float, holding: Event) -> None:
    """Take ``count`` messages, say so, then hang without settling them (until killed)."""
    broker = SQLiteBroker(db, visibility_timeout=visibility_timeout)
    held = 0
    while held < count:
        held += len(broker.fetch([queue], count - held, 5.0))
    holding.set()
    time.sleep(600)
