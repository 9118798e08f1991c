"""A build that silently fell back to the pure twin must not pass CI."""

from __future__ import annotations

import importlib
import os

import pytest

import machinery._speedups

REQUIRED = pytest.mark.skipif(
    not os.environ.get("MACHINERY_REQUIRE_EXTENSIONS"), reason="MACHINERY_REQUIRE_EXTENSIONS is not set"
)


@REQUIRED
def test_compiled_codec_is_in_use_when_required() -> None:
    module = importlib.import_module("machinery._speedups._codec_c")
    assert machinery._speedups.USING_EXTENSIONS, "the switch fell back to the pure-Python twin"
    assert machinery._speedups.encode is module.encode
    assert machinery._speedups.decode is module.decode
    assert machinery._speedups.parse_number_args is module.parse_number_args


@REQUIRED
def test_compiled_frame_scanner_is_in_use_when_required() -> None:
    module = importlib.import_module("machinery._speedups._frames_c")
    assert machinery._speedups.USING_EXTENSIONS, "the switch fell back to the pure-Python twin"
    assert machinery._speedups.scan_frames is module.scan_frames
