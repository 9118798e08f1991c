"""What the fuzz targets share: loading the two implementations under atheris, and running
libFuzzer with this directory's seed corpus unless corpus directories are given.

Coverage comes from the pure-Python twins, instrumented by atheris (``instrument_imports``): the
compiled modules are not built with ``-fsanitize=fuzzer-no-link`` (that needs clang), so libFuzzer
cannot see their branches. Every input is run through both implementations and compared
(differential fuzzing): the twin defines what is right, and the compiled module, including its fast
paths alone (``_decode_strict``, ``_encode_strict``), must agree with it or hand over to it. A crash
of the compiled module (a deadly signal) is caught by libFuzzer either way.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import atheris

__all__ = ["FUZZ_DIR", "load", "run"]

FUZZ_DIR = Path(__file__).resolve().parent
REPO_ROOT = FUZZ_DIR.parents[1]


def load(twin: str, compiled: str) -> tuple[ModuleType, ModuleType]:
    """``machinery._speedups.<twin>`` instrumented for coverage, and the compiled ``<compiled>``
    (which must have been built: the harness fuzzes the extension)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    with atheris.instrument_imports(include=["machinery"]):
        py_module = importlib.import_module(f"machinery._speedups.{twin}")
    try:
        c_module = importlib.import_module(f"machinery._speedups.{compiled}")
    except ImportError as exc:
        raise SystemExit(f"the compiled module {compiled} is not built ({exc}); run `make deps` first") from None
    return py_module, c_module


def run(target: str, test_one_input: Callable[[bytes], None]) -> None:
    """libFuzzer on ``test_one_input`` with the command line's flags (``-max_total_time=60``, ...).
    Without corpus directories on the command line, a copy of ``corpus/<target>`` is used (new
    inputs go to that temporary copy, never into the repository). A default ``-timeout=10`` makes
    an input that runs 10 s a reported hang."""
    argv = list(sys.argv)
    if not any(arg.startswith("-timeout=") for arg in argv[1:]):
        argv.insert(1, "-timeout=10")
    if not any(not arg.startswith("-") for arg in argv[1:]):
        work = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
        seeds = FUZZ_DIR / "corpus" / target
        if seeds.is_dir():
            for seed in seeds.iterdir():
                shutil.copy(seed, work / seed.name)
        argv.append(str(work))
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
