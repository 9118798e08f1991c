"""Send the example tasks to a running worker and print their results:

    python examples/worker.py     # in one shell
    python examples/send.py       # in another
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # so `examples` imports from anywhere

from examples.app import app
from machinery import MachineryError, Signature, TaskFailed, chain

TIMEOUT = 30.0


def main() -> None:
    # A single task.
    print("add(1, 1) =", app.send_task(Signature("add", [1, 1])).get(timeout=TIMEOUT))
    print("multiply(2, 3, 7) =", app.send_task(Signature("multiply", [2, 3, 7])).get(timeout=TIMEOUT))

    # A success callback: add's result is prepended to the callback's args (add is not immutable).
    callback = Signature("multiply", [10])
    app.send_task(Signature("add", [2, 3], on_success=[callback]))
    print("add(2, 3) -> multiply(<result>, 10) =", app.result(callback.uuid).get(timeout=TIMEOUT))

    # An error callback: it receives the error text first.
    on_error = Signature("report_error", ["sent by send.py"])
    failing = app.send_task(Signature("fail", [1, 2], on_error=[on_error]))
    try:
        failing.get(timeout=TIMEOUT)
    except TaskFailed as exc:
        print("fail(1, 2) failed:", exc.error)
    print("  its error callback returned:", app.result(on_error.uuid).get(timeout=TIMEOUT))

    # The example chain: ((1 + 1) + (5 + 6)) * 4 = 52.
    result = app.send_task(chain(Signature("add", [1, 1]), Signature("add", [5, 6]), Signature("multiply", [4])))
    print("chain add(1, 1) -> add(5, 6) -> multiply(4) =", result.get(timeout=TIMEOUT))
    app.close()


if __name__ == "__main__":
    try:
        main()
    except MachineryError as exc:  # no worker, an unreachable broker...: one line, not a traceback
        sys.exit(f"send.py: {exc}")
