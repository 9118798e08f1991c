"""What every benchmark prints about the machine it ran on, so figures can be compared."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cpu_model", "describe", "load"]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("?" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def describe(*extras: str) -> str:
    """CPU, cores and Python, then ``extras`` (library versions, codec in use...)."""
    parts = [f"CPU {cpu_model()}", f"{os.cpu_count()} cores", f"Python {platform.python_version()}", *extras]
    return ", ".join(parts)


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())
