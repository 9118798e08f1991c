"""The App of the fault tests, in this process and in worker processes (``-A tests.faults.fault_app:app``):
configured from ``MACHINERY_*`` variables, with tasks that misbehave in every way the faults need."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from machinery import App, Config, JSONValue, SoftTimeLimitExceeded, load_config


def exit_task(code: int) -> None:
    """Calls sys.exit(code) (SystemExit, a BaseException)."""
    sys.exit(code)


def interrupt() -> None:
    """Raises KeyboardInterrupt itself (no signal involved)."""
    raise KeyboardInterrupt


def generator_exit() -> None:
    raise GeneratorExit


def echo(*args: JSONValue) -> list[JSONValue]:
    """Returns its args (an error callback shows what it was sent)."""
    return list(args)


def repeat(text: str, times: int) -> str:
    """A result larger than the message that asked for it."""
    return text * times


def add(a: float, b: float) -> float:
    return a + b


def sleep(seconds: float) -> float:
    """Blocks in one C call (time.sleep) for ``seconds``."""
    time.sleep(seconds)
    return seconds


def spin(seconds: float) -> str:
    """Runs Python code for ``seconds`` (where a soft time limit is raised at once)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "done"


def tidy(seconds: float) -> str:
    """Spins, and tidies up when its soft time limit passes."""
    try:
        spin(seconds)
    except SoftTimeLimitExceeded:
        return "tidied up"
    return "done"


def stuck() -> None:
    """Registered with a hard time limit of 1 s; blocks for ever."""
    time.sleep(10**6)


#: Task name -> function; ``stuck`` is registered with a hard time limit of 1 s.
TASKS: dict[str, Callable[..., object]] = {
    "exit": exit_task, "interrupt": interrupt, "generator_exit": generator_exit, "echo": echo, "add": add,
    "repeat": repeat, "sleep": sleep, "spin": spin, "tidy": tidy,
}


def make_app(config: Config) -> App:
    """An App for ``config`` with every fault task registered."""
    application = App(config)
    application.register_tasks(TASKS)
    application.register_task("stuck", stuck, time_limit=1.0)
    return application


app = make_app(load_config())
