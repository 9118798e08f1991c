"""Configuration: one frozen dataclass (loading from YAML and the environment is added below it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from machinery.jsonvalues import EMPTY_DICT, FrozenDict

__all__ = ["Config"]


@dataclass(frozen=True, slots=True)
class Config:
    """Everything an App needs. The defaults run with no server: SQLite files in the working
    directory for the broker and the results."""

    broker_url: str = "sqlite:///machinery.sqlite3"
    result_backend: str = "sqlite:///machinery.sqlite3"
    """A URL (sqlite://, redis://, memory://) or "none" to store no results."""
    results_expire_in: int = 3600
    """Seconds a stored result is kept."""
    exchange: str = "machinery_exchange"
    exchange_type: str = "direct"
    default_queue: str = "machinery_tasks"
    binding_key: str = "machinery_task"
    prefetch_count: int = 16
    queue_declare_args: FrozenDict = field(default=EMPTY_DICT)
    """Extra arguments for declaring AMQP queues, e.g. {"x-max-priority": 10} or {"x-queue-type": "quorum"}."""
    visibility_timeout: float = 30.0
    """Seconds a delivered message stays hidden before it is delivered again (SQLite broker)."""
    max_redeliveries: int = 5
    """Deliveries of a message naming a task not registered here before it is dead-lettered."""
    concurrency: int = 4
    """Task threads per worker process."""
