"""The documentation's generated references cover the code: every Config field (with its
docstring), every command and option of the parser, every public name of the package."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

import machinery
from machinery.cli import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = pytest.mark.skipif(not (DOCS / "reference.py").is_file(), reason="needs the source tree's docs/")


def reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", DOCS / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_config_field_has_a_docstring() -> None:
    docs = reference().field_docs()
    missing = [f.name for f in dataclasses.fields(machinery.Config) if not docs.get(f.name)]
    assert missing == []


def test_the_config_reference_lists_every_field_with_its_environment_name_and_meaning() -> None:
    ref = reference()
    text = ref.config_reference()
    docs = ref.field_docs()
    for f in dataclasses.fields(machinery.Config):
        assert f"### `{f.name}`" in text
        assert f"`MACHINERY_{f.name.upper()}`" in text
        assert docs[f.name] in text
    assert "default `sqlite:///machinery.sqlite3`" in text
    assert "Go layout `broker`" in text


def test_the_cli_reference_shows_every_command_and_option() -> None:
    text = reference().cli_reference()
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in commands.choices.items():
        assert f"## machinery {name}" in text
        for action in sub._actions:
            for option in action.option_strings:
                assert option in text, (name, option)
    assert "--version" in text


def test_the_api_reference_documents_every_public_name() -> None:
    text = reference().api_reference()
    for name in machinery.__all__:
        assert f"::: machinery.{name}\n" in text


def test_every_page_with_a_marker_names_a_known_generator() -> None:
    known = {"config", "cli", "api"}
    for page in DOCS.glob("*.md"):
        for line in page.read_text().splitlines():
            if line.startswith("<!-- generated:"):
                assert line.removeprefix("<!-- generated: ").removesuffix(" -->") in known, page
