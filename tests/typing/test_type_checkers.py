"""The public API types what users write, under mypy --strict and under pyright (strict), the way
typeshed and msgspec test their types: user-style files in ``cases/`` where every line marked
``# E:`` must be reported by the checker on that line and no other line may be; ``# R: T`` lines
hold a ``reveal_type`` that must show ``T``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.typing.checkers import CHECKERS, Report, marked, run_mypy, run_pyright

CASES = Path(__file__).parent / "cases"
FILES = sorted(p for p in CASES.glob("*.py") if p.name != "__init__.py")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Report]]:
    """Each checker's reports on every case file (one run per checker)."""
    cache = tmp_path_factory.mktemp("mypy-cache")
    return {"mypy": run_mypy(FILES, cache)[0], "pyright": run_pyright(FILES)[0]}


def ids(path: Path) -> str:
    return path.stem


@pytest.mark.slow
@pytest.mark.parametrize("checker", CHECKERS)
@pytest.mark.parametrize("case", FILES, ids=ids)
def test_errors_are_reported_on_exactly_the_marked_lines(
    reports: dict[str, dict[str, Report]], checker: str, case: Path
) -> None:
    report = reports[checker].get(case.name, Report())
    expected = set(marked(case, "E"))
    unexpected = {n: report.errors[n] for n in sorted(set(report.errors) - expected)}
    missed = sorted(expected - set(report.errors))
    assert not unexpected, f"{checker} reported errors on unmarked lines of {case.name}: {unexpected}"
    assert not missed, f"{checker} did not report the marked lines {missed} of {case.name}"


@pytest.mark.slow
@pytest.mark.parametrize("checker", CHECKERS)
@pytest.mark.parametrize("case", [p for p in FILES if marked(p, "R")], ids=ids)
def test_revealed_types_are_the_marked_ones(reports: dict[str, dict[str, Report]], checker: str, case: Path) -> None:
    report = reports[checker].get(case.name, Report())
    for number, expected in marked(case, "R").items():
        assert report.revealed.get(number) == expected, f"{checker}, {case.name} line {number}"


def test_every_mistakes_file_marks_mistakes_and_every_ok_file_reveals_types() -> None:
    """The suite cannot pass by being empty: the mistakes files hold marked lines, the rest none."""
    for case in FILES:
        if case.stem.endswith("_mistakes"):
            assert len(marked(case, "E")) >= 5, case.name
        else:
            assert marked(case, "E") == {}, case.name
    assert any(marked(case, "R") for case in FILES)
