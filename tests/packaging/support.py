"""What the packaging tests share: the repository, its tracked files copied elsewhere (so a build
leaves nothing in the checkout), and make with this interpreter's environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

__all__ = ["REPO_ROOT", "VENV", "copy_sources", "make", "needs_source_tree"]

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The virtual environment running the tests (make's VENV).
VENV = Path(sys.prefix)

needs_source_tree = pytest.mark.skipif(
    not (REPO_ROOT / "setup.py").is_file() or shutil.which("make") is None,
    reason="needs the source tree and make (not an installed wheel's tests)",
)


def copy_sources(target: Path) -> Path:
    """The repository's tracked files (as git sees them, else the working tree less build output)
    copied to ``target``."""
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT,
                                capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        listed = [str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.rglob("*") if p.is_file()]
    for name in listed:
        source = REPO_ROOT / name
        if source.is_file() and not name.endswith((".so", ".c", ".pyc")):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def make(*args: str, cwd: Path = REPO_ROOT, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    """``make args...`` in ``cwd`` with the test environment as make's VENV, without the caller's
    ``MACHINERY_*`` variables (``env`` adds variables)."""
    return subprocess.run(
        ["make", "-s", f"VENV={VENV}", *args], cwd=cwd,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MACHINERY_")}, **env},
        capture_output=True, text=True, timeout=timeout, check=False,
    )
