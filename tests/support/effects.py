"""The side channel in which the test worker app's ``record`` task notes each run: a SQLite file
(one row per run, so duplicates show), named by ``MACHINERY_TEST_EFFECTS`` in the worker's
environment."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

__all__ = ["EFFECTS_ENV", "effects", "record_effect", "recorded_at"]

#: The environment variable naming the SQLite file of the side channel.
EFFECTS_ENV = "MACHINERY_TEST_EFFECTS"


def record_effect(path: str, key: str) -> None:
    """Insert ``key`` into the effects table of ``path`` (created if needed)."""
    with sqlite3.connect(path, timeout=30.0) as db:
        db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT NOT NULL, at REAL NOT NULL)")
        db.execute("INSERT INTO effects VALUES (?, ?)", (key, time.time()))


def _rows(path: Path) -> list[tuple[str, float]]:
    if not path.exists():
        return []
    with sqlite3.connect(path, timeout=30.0) as db:
        try:
            return [(str(key), float(at)) for key, at in db.execute("SELECT key, at FROM effects ORDER BY rowid")]
        except sqlite3.OperationalError:
            return []


def effects(path: Path) -> list[str]:
    """The keys recorded in ``path``, in order, duplicates included."""
    return [key for key, _at in _rows(path)]


def recorded_at(path: Path) -> list[float]:
    """When each key was recorded (``time.time()``), in order."""
    return [at for _key, at in _rows(path)]
