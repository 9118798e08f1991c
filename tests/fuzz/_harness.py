"""What the fuzz targets share: the two implementations under atheris, and libFuzzer run with this
directory's seed corpus unless corpus directories are given.

Coverage that guides libFuzzer comes from two places:

- the pure-Python twins, instrumented by atheris (``instrument_imports``);
- the C code of the compiled modules, when ``MACHINERY_FUZZ_NATIVE`` names a directory of copies
  built with coverage counters by ``build_native.py`` (``make fuzz`` does both when clang is
  installed). Without it the installed compiled modules are fuzzed without native coverage.

Every input goes through both implementations and the results are compared (differential fuzzing):
the twin defines what is right, and the compiled module, its fast paths alone included
(``_decode_strict``, ``_encode_strict``), must agree with it or hand over to it. A crash of the
compiled module (a deadly signal) is caught by libFuzzer in either mode.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.machinery
import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import atheris

__all__ = ["FUZZ_DIR", "NATIVE_ENV", "Implementations", "compare", "run"]

FUZZ_DIR = Path(__file__).resolve().parent
NATIVE_ENV = "MACHINERY_FUZZ_NATIVE"
T = TypeVar("T")


class Implementations:
    """The twin ``machinery._speedups.<twin>`` (instrumented as it is imported here) and the
    compiled ``<compiled>``, loaded on first use: the instrumented copy must be loaded once
    libFuzzer runs, so that its coverage counters reach it."""

    def __init__(self, twin: str, compiled: str) -> None:
        with atheris.instrument_imports(include=["machinery"]):
            self.py = importlib.import_module(f"machinery._speedups.{twin}")
        self._compiled = compiled
        self._c: ModuleType | None = None

    @property
    def c(self) -> ModuleType:
        if self._c is None:
            self._c = _load_compiled(self._compiled)
        return self._c


def _outcome(function: Callable[[T], object], arg: T, error: type[Exception]) -> object:
    try:
        return function(arg)
    except error as exc:
        return (type(exc).__name__, str(exc))


def compare(what: str, arg: T, *, twin: Callable[[T], object], compiled: Callable[[T], object],
            fast_path: Callable[[T], object], error: type[Exception]) -> object:
    """The twin's outcome for ``arg`` (its value, or the documented ``error`` as (class, text)).
    ``AssertionError`` when the compiled function's outcome differs, or when its fast path alone
    gives anything but the twin's value or a hand-over (any exception but ``SystemError``, which is
    a C-level bug). Any other exception from either implementation propagates: a bug."""
    expected = _outcome(twin, arg, error)
    got = _outcome(compiled, arg, error)
    if got != expected:
        raise AssertionError(f"compiled {what} gave {got!r}, the twin {expected!r}, for {arg!r}")
    try:
        fast = fast_path(arg)
    except SystemError:
        raise
    except Exception:
        return expected  # handed over to the twin, whose answer was checked above
    if fast != expected:
        raise AssertionError(f"the compiled fast path of {what} gave {fast!r}, the twin {expected!r}, for {arg!r}")
    return expected


def _load_compiled(name: str) -> ModuleType:
    full = f"machinery._speedups.{name}"
    native = os.environ.get(NATIVE_ENV)
    if not native:
        try:
            return importlib.import_module(full)
        except ImportError as exc:
            raise SystemExit(f"the compiled module {name} is not built ({exc}); run `make deps` first") from None
    # The instrumented copy calls libFuzzer's __sanitizer_cov_* functions; they live in atheris's
    # core module, loaded by now but with local symbols: make them global before loading the copy.
    core_dir = Path(atheris.__file__).parent
    for core in core_dir.glob("core_with_libfuzzer*.so"):
        ctypes.CDLL(str(core), mode=os.RTLD_GLOBAL | os.RTLD_NOLOAD)
    path = Path(native) / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    if not path.exists():
        raise SystemExit(f"{path} does not exist: run tests/fuzz/build_native.py {native}")
    loader = importlib.machinery.ExtensionFileLoader(full, str(path))
    spec = importlib.util.spec_from_file_location(full, str(path), loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[full] = module
    print(f"fuzzing {path} (with native coverage)", file=sys.stderr)
    return module


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
