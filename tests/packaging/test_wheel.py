"""``make wheel`` gives a manylinux wheel without generated C that installs into a fresh virtual
environment with its compiled hot path in use; the sdist carries the Cython sources and the licence."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from tests.packaging.support import REPO_ROOT, copy_sources, make, needs_source_tree

pytestmark = [pytest.mark.slow, needs_source_tree]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = copy_sources(tmp_path_factory.mktemp("tree"))
    out = tmp_path_factory.mktemp("wheelhouse")
    done = make("wheel", f"WHEELHOUSE={out}", cwd=tree)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_is_a_manylinux_wheel_for_this_python(wheel: Path) -> None:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert wheel.name.startswith(f"machinery-0.1.0-{tag}-{tag}-")
    assert "manylinux" in wheel.name
    assert "linux_x86_64.whl" not in wheel.name.replace("manylinux", "")


def test_the_wheel_has_compiled_modules_and_the_licence_but_no_generated_c(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if n.endswith(".c")] == []
    assert any(n.startswith("machinery/_speedups/_codec_c.") and n.endswith(".so") for n in names)
    assert any(n.startswith("machinery/_speedups/_frames_c.") and n.endswith(".so") for n in names)
    assert "machinery-0.1.0.dist-info/licenses/LICENSE" in names


def test_the_wheel_installs_into_a_fresh_environment_with_its_compiled_hot_path(
    wheel: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel)],
                               capture_output=True, text=True, timeout=300, check=False)
    assert installed.returncode == 0, installed.stderr
    probe = "import machinery, sys; print(machinery.USING_EXTENSIONS, machinery.__file__)"
    done = subprocess.run([python, "-W", "error::RuntimeWarning", "-c", probe], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    using, where = done.stdout.split()
    assert using == "True"
    assert where.startswith(str(env_dir))
    demo = subprocess.run([env_dir / "bin" / "machinery", "demo"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180, check=False)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "= 52" in demo.stdout
    # Run from a source checkout (not built), as the README's first command is: the demo's worker
    # must still import the installed package, not the checkout's (which would warn and be slow).
    tree = copy_sources(tmp_path / "checkout")
    demo = subprocess.run([env_dir / "bin" / "machinery", "demo"], cwd=tree, capture_output=True,
                          text=True, timeout=180, check=False)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "compiled hot path is not available" not in demo.stderr


def test_the_sdist_carries_the_cython_sources_and_the_licence(tmp_path: Path) -> None:
    tree = copy_sources(tmp_path / "tree")
    done = make("sdist", f"WHEELHOUSE={tmp_path}", cwd=tree)
    assert done.returncode == 0, done.stderr[-3000:]
    (sdist,) = tmp_path.glob("machinery-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    sources = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "machinery").rglob("*")
               if p.suffix in (".pyx", ".pxi", ".pxd")}
    assert sources and sources <= names
    assert {"LICENSE", "setup.py", "pyproject.toml"} <= names
    assert [n for n in names if n.endswith(".c")] == []


def test_the_licence_is_the_whole_mpl_2_0_text() -> None:
    text = (REPO_ROOT / "LICENSE").read_text()
    assert text.startswith("Mozilla Public License Version 2.0\n")
    for heading in ("1. Definitions", "10. Versions of the License",
                    'Exhibit B - "Incompatible With Secondary Licenses" Notice'):
        assert heading in text
    assert len(text.splitlines()) == 373
