"""Build copies of the compiled modules with libFuzzer's coverage instrumentation, for the fuzz
harness to load instead of the installed ones (``MACHINERY_FUZZ_NATIVE=<dir>``), so that libFuzzer
is guided by the branches of the C code too, not only those of the pure-Python twins.

Needs clang. The sources are translated by Cython with the directives ``setup.py`` uses, then
compiled with ``-fsanitize-coverage=inline-8bit-counters,indirect-calls,trace-cmp,pc-table``: the
counters libFuzzer reads, without ``-fsanitize=fuzzer-no-link``'s stack-depth tracking, whose
thread-local variable the libFuzzer inside atheris's wheel does not export.

    python tests/fuzz/build_native.py OUTPUT_DIR      # exits 1 with one line when it cannot build
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEEDUPS = REPO_ROOT / "machinery" / "_speedups"
MODULES = ("_codec_c", "_frames_c")
DIRECTIVES = ("language_level=3", "boundscheck=False", "wraparound=False", "initializedcheck=False", "cdivision=True")
COVERAGE = "-fsanitize-coverage=inline-8bit-counters,indirect-calls,trace-cmp,pc-table"


def build(output: Path) -> list[Path]:
    """Translate and compile every compiled module into ``output``; the paths of the built files."""
    clang = shutil.which("clang")
    if clang is None:
        raise SystemExit("build_native: clang is not installed (apt-get install clang)")
    output.mkdir(parents=True, exist_ok=True)
    include = sysconfig.get_paths()["include"]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    built = []
    for name in MODULES:
        c_file = output / f"{name}.c"
        directives = [arg for d in DIRECTIVES for arg in ("-X", d)]
        subprocess.run([sys.executable, "-m", "cython", *directives, "-o", str(c_file), str(SPEEDUPS / f"{name}.pyx")],
                       check=True)
        target = output / f"{name}{suffix}"
        subprocess.run([clang, "-shared", "-fPIC", "-O2", "-g", COVERAGE, f"-I{include}", str(c_file),
                        "-o", str(target)], check=True)
        built.append(target)
    return built


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    try:
        for path in build(Path(sys.argv[1])):
            print(f"built {path}")
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"build_native: {exc}") from None
