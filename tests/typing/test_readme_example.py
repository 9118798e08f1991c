"""The README's typed example gives exactly the errors the README shows, from mypy and pyright."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.typing.checkers import ROOT, run_mypy, run_pyright

README = ROOT / "README.md"


def block(name: str) -> str:
    """The fenced block after ``<!-- typed-example: name -->`` in the README."""
    m = re.search(rf"<!-- typed-example: {re.escape(name)} -->\n```[a-z]*\n(.*?)\n```", README.read_text(), re.S)
    assert m is not None, f"README has no typed-example block {name!r}"
    return m.group(1)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("readme") / "example.py"
    path.write_text(block("example.py") + "\n")
    return path


def shown(output: str, directory: Path) -> str:
    """Checker output as the README shows it: paths relative to the example's directory."""
    return output.replace(f"{directory}/", "").rstrip("\n")


@pytest.mark.slow
def test_mypy_reports_what_the_readme_shows(example: Path, tmp_path: Path) -> None:
    output = run_mypy([example], tmp_path / "cache")[1]
    assert shown(output, example.parent) == block("mypy")


@pytest.mark.slow
def test_pyright_reports_what_the_readme_shows(example: Path) -> None:
    output = run_pyright([example])[1]
    assert shown(output, example.parent) == block("pyright")


def test_the_example_runs_under_python() -> None:
    """The example is a module a user can import (its tasks register; nothing is sent)."""
    source = block("example.py")
    compile(source, "example.py", "exec")
    assert "@app.task" in source
