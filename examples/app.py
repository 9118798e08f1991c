"""The example App: configured from ``examples/config.yml`` (``MACHINERY_*`` variables override it),
with the example tasks registered. Run a worker for it with ``python examples/worker.py`` or
``machinery worker -A examples.app:app``."""

from __future__ import annotations

from pathlib import Path

from examples.tasks import AddTask, FailingTask, MultiplyTask, report_error
from machinery import App, load_config

CONFIG_FILE = Path(__file__).with_name("config.yml")

app = App(load_config(CONFIG_FILE))

# A map of names to tasks ...
app.register_tasks({"add": AddTask(), "multiply": MultiplyTask()})
# ... one by one ...
app.register_task("fail", FailingTask())
app.register_task("report_error", report_error)


# ... or a decorator on a plain function (it stays callable: concatenate("a", "b") == "ab").
@app.task(name="concatenate")
def concatenate(*parts: str) -> str:
    """Joins its string args."""
    return "".join(parts)
