"""A producer process of the load tests: ``python -m tests.faults.producer PREFIX COUNT [BATCH]``
sends COUNT ``record`` tasks keyed ``PREFIX-0`` ... in batches of BATCH, configured from
``MACHINERY_*`` variables; prints one line when done and exits 0, or exits 1 with the error."""

from __future__ import annotations

import sys

from machinery import App, Signature, load_config


def main(argv: list[str]) -> int:
    prefix, count = argv[0], int(argv[1])
    batch = int(argv[2]) if len(argv) > 2 else 50
    with App(load_config()) as app:
        for start in range(0, count, batch):
            app.send_tasks([Signature("record", [f"{prefix}-{i}"]) for i in range(start, min(count, start + batch))])
    print(f"{prefix}: sent {count}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
