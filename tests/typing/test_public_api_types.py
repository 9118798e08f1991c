"""The public API types what users write: mypy --strict accepts correct code and reports mistakes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "cases"
ROOT = Path(__file__).resolve().parents[2]


def run_mypy(path: Path, tmp_path: Path) -> list[str]:
    proc = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--show-error-codes",
            "--cache-dir", str(tmp_path / "mypy-cache"), "--config-file", str(ROOT / "pyproject.toml"),
            str(path),
        ],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return [line for line in proc.stdout.splitlines() if ": error:" in line]


@pytest.mark.slow
def test_correct_user_code_type_checks(tmp_path: Path) -> None:
    assert run_mypy(CASES / "user_ok.py", tmp_path) == []


@pytest.mark.slow
def test_user_mistakes_are_reported_on_exactly_the_marked_lines(tmp_path: Path) -> None:
    source = (CASES / "user_mistakes.py").read_text().splitlines()
    expected = {i for i, line in enumerate(source, start=1) if "# E:" in line}
    errors = run_mypy(CASES / "user_mistakes.py", tmp_path)
    reported = {int(m.group(1)) for line in errors if (m := re.search(r"\.py:(\d+):", line))}
    assert reported == expected, "\n".join(errors)
