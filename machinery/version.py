"""The release of machinery (``machinery.__version__``, ``machinery --version``)."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
