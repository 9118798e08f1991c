"""Running mypy --strict and pyright on user-style files, and reading what they report.

Each checker runs as its users run it (mypy with the project's configuration, pyright as
``basedpyright`` with this interpreter's packages) and reports, per file, the lines with errors
and the types that ``reveal_type`` showed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKERS = ("mypy", "pyright")


@dataclass
class Report:
    """What one checker said about one file: errors by line (1-based) and revealed types by line."""

    errors: dict[int, list[str]] = field(default_factory=dict)
    revealed: dict[int, str] = field(default_factory=dict)


def normalise_type(text: str) -> str:
    """A revealed type without module prefixes (mypy writes ``machinery.workflows.Chain``)."""
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])", "", text)


def pyright_command() -> list[str]:
    exe = shutil.which("basedpyright", path=str(Path(sys.executable).parent)) or shutil.which("basedpyright")
    if exe is None:
        raise RuntimeError("basedpyright is not installed (it is in the test extra: pip install -e '.[test]')")
    return [exe]


def run_mypy(paths: Sequence[Path], cache_dir: Path, cwd: Path = ROOT) -> tuple[dict[str, Report], str]:
    """mypy --strict on ``paths``: reports by file name, and the raw output."""
    proc = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--show-error-codes",
            "--cache-dir", str(cache_dir), "--config-file", str(ROOT / "pyproject.toml"),
            *map(str, paths),
        ],
        capture_output=True, text=True, cwd=cwd, check=False,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    reports: dict[str, Report] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"(.+?\.py):(\d+): (error|note): (.*)$", line)
        if m is None:
            continue
        report = reports.setdefault(Path(m.group(1)).name, Report())
        number, kind, text = int(m.group(2)), m.group(3), m.group(4)
        if kind == "error":
            report.errors.setdefault(number, []).append(text)
        elif (r := re.match(r'Revealed type is "(.*)"$', text)) is not None:
            report.revealed[number] = normalise_type(r.group(1))
    return reports, proc.stdout


def run_pyright(paths: Sequence[Path], cwd: Path = ROOT) -> tuple[dict[str, Report], str]:
    """pyright on ``paths`` (strict where a file says ``# pyright: strict``): reports by file name,
    and the text output as a user sees it."""
    base = [*pyright_command(), "--pythonpath", sys.executable]
    command = [*base, "--outputjson", *map(str, paths)]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    reports: dict[str, Report] = {}
    for diag in data["generalDiagnostics"]:
        report = reports.setdefault(Path(diag["file"]).name, Report())
        number = diag["range"]["start"]["line"] + 1
        if diag["severity"] == "error":
            report.errors.setdefault(number, []).append(diag["message"])
        elif (r := re.match(r'Type of ".*" is "(.*)"$', diag["message"], re.S)) is not None:
            report.revealed[number] = normalise_type(r.group(1))
    text = subprocess.run([*base, *map(str, paths)], capture_output=True, text=True, cwd=cwd, check=False).stdout
    return reports, text


def marked(path: Path, marker: str) -> dict[int, str]:
    """The lines of ``path`` carrying ``# <marker>: text``, with their text."""
    out: dict[int, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        m = re.search(rf"#\s*{marker}:\s*(.*)$", line)
        if m is not None:
            out[number] = m.group(1).strip()
    return out
