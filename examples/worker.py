"""Run a worker for the example app:

    python examples/worker.py

It consumes the default queue until Ctrl-C / SIGTERM, then stops cleanly.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # so `examples` imports from anywhere

from examples.app import app
from machinery import MachineryError


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = app.worker()
    worker.launch()
    app.close()


if __name__ == "__main__":
    try:
        main()
    except MachineryError as exc:  # a broker or result store it cannot open: one line, status 1
        sys.exit(f"worker.py: {exc}")
