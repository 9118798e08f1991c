"""A build without a C compiler says so on the terminal (pip hides build output without ``-v``);
``import machinery`` then warns once, unless ``MACHINERY_NO_EXTENSIONS=1`` chose that build; and
``make test`` refuses to run on it unless the pure build was asked for."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

import machinery
from tests.packaging.support import copy_sources, make, needs_source_tree

WARNING = "could not compile the hot path"


def pure_package(target: Path) -> Path:
    """The package's Python files (from wherever it is installed) without its compiled modules,
    importable from ``target``."""
    package = Path(machinery.__file__).parent
    for source in package.rglob("*"):
        if source.is_file() and source.suffix in (".py", ".typed"):
            dest = target / "machinery" / source.relative_to(package)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(source.read_bytes())
    return target


def environment(path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACHINERY_")}
    env.update(PYTHONPATH=str(path), **extra)
    return env


def test_importing_without_the_compiled_modules_warns_once(tmp_path: Path) -> None:
    code = "import machinery, importlib; importlib.reload(machinery); print(machinery.USING_EXTENSIONS)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment(pure_package(tmp_path)),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "False"
    warnings = [line for line in done.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(warnings) == 1, done.stderr
    assert "the compiled hot path is not available" in warnings[0]
    assert "MACHINERY_NO_EXTENSIONS=1" in warnings[0]


def test_asking_for_the_pure_build_silences_the_warning(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import machinery"], cwd=tmp_path,
                          env=environment(pure_package(tmp_path), MACHINERY_NO_EXTENSIONS="1"),
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, "")


@needs_source_tree
def test_make_test_refuses_a_build_that_fell_back(tmp_path: Path) -> None:
    done = make("check-extensions", PYTHONPATH=str(pure_package(tmp_path)))
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == (
        "machinery: the compiled hot path did not build (see the output of make deps / pip install -v); "
        "install a C compiler and run make deps again, or ask for the pure-Python build with "
        "MACHINERY_NO_EXTENSIONS=1"
    )


@needs_source_tree
def test_make_test_accepts_the_pure_build_when_asked_for(tmp_path: Path) -> None:
    done = make("check-extensions", PYTHONPATH=str(pure_package(tmp_path)), MACHINERY_NO_EXTENSIONS="1")
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
@needs_source_tree
def test_a_build_without_a_compiler_warns_on_the_terminal_without_verbose(tmp_path: Path) -> None:
    tree = copy_sources(tmp_path / "tree")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "out"), str(tree)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACHINERY_")}
    env.update(CC="false", CXX="false", LDSHARED="false")
    pid, fd = pty.fork()
    if pid == 0:  # the child: pip on the pseudo-terminal, as a user would run it
        os.execve(command[0], command, env)
    output = b""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-3000:]
    assert WARNING in text
    assert "installing the pure-Python build" in text
    (wheel,) = (tmp_path / "out").glob("*.whl")
    assert wheel.name.startswith("machinery-0.1.0-")
