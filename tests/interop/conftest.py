"""Fixtures of the Go interoperability tests: the Go program of ``go/``."""

from __future__ import annotations

import pytest

from tests.support.gointerop import GoProgram, build_go_program


@pytest.fixture(scope="session")
def go() -> GoProgram:
    """The Go program, built once (skips without a Go toolchain unless MACHINERY_REQUIRE_GO is set)."""
    return build_go_program()
