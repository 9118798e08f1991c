"""The README's typed example gives exactly the errors the README shows, from mypy and pyright."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from machinery import App
from tests.support.workers import running
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


def test_the_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The example runs as written, against a worker (its type mistakes are legal Python)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MACHINERY_BROKER_URL", "memory://readme-example")
    monkeypatch.setenv("MACHINERY_RESULT_BACKEND", "memory://readme-example")
    namespace: dict[str, Any] = {"__name__": "example"}
    exec(compile(block("example.py"), "example.py", "exec"), namespace)
    app: App = namespace["app"]
    with running(app):
        namespace["main"]()
    app.close()
    assert capsys.readouterr().out.splitlines()[-2:] == ["3.0 28.0 kg [2.0, 4.0] 6.0", "3.0"]
