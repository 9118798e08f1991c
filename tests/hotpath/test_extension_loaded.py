"""A build that silently fell back to the pure twin must not pass CI; and each compiled module is
loaded on its own, so one that cannot be imported leaves the other in use."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

import machinery._speedups

REQUIRED = pytest.mark.skipif(
    not os.environ.get("MACHINERY_REQUIRE_EXTENSIONS"), reason="MACHINERY_REQUIRE_EXTENSIONS is not set"
)


@REQUIRED
def test_compiled_codec_is_in_use_when_required() -> None:
    module = importlib.import_module("machinery._speedups._codec_c")
    assert machinery._speedups.CODEC_COMPILED, "the switch fell back to the pure-Python twin"
    assert machinery._speedups.encode is module.encode
    assert machinery._speedups.decode is module.decode
    assert machinery._speedups.parse_number_args is module.parse_number_args


@REQUIRED
def test_compiled_frame_scanner_is_in_use_when_required() -> None:
    module = importlib.import_module("machinery._speedups._frames_c")
    assert machinery._speedups.FRAMES_COMPILED, "the switch fell back to the pure-Python twin"
    assert machinery._speedups.scan_frames is module.scan_frames


@REQUIRED
def test_both_compiled_modules_make_using_extensions_true() -> None:
    assert machinery._speedups.USING_EXTENSIONS


@pytest.mark.parametrize(("broken", "kept"), [("_frames_c", "_codec_c"), ("_codec_c", "_frames_c")])
def test_one_compiled_module_that_fails_to_import_leaves_the_other_in_use(broken: str, kept: str) -> None:
    if importlib.util.find_spec(f"machinery._speedups.{kept}") is None:
        pytest.skip(f"{kept} is not built")
    script = textwrap.dedent(f"""
        import sys

        class Broken:
            def find_spec(self, name, path=None, target=None):
                if name == "machinery._speedups.{broken}":
                    raise ImportError("simulated: {broken} cannot be loaded")
                return None

        sys.meta_path.insert(0, Broken())
        import machinery._speedups as s
        print(s.CODEC_COMPILED, s.FRAMES_COMPILED, s.USING_EXTENSIONS, s.scan_frames.__module__, s.encode.__module__)
    """)
    env = {k: v for k, v in os.environ.items() if k != "MACHINERY_NO_EXTENSIONS"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env).stdout
    codec, frames, both, scan_module, encode_module = out.split()
    if broken == "_frames_c":
        assert (codec, frames, scan_module, encode_module) == (
            "True", "False", "machinery._speedups._frames_py", "machinery._speedups._codec_c")
    else:
        assert (codec, frames, scan_module, encode_module) == (
            "False", "True", "machinery._speedups._frames_c", "machinery._speedups._codec_py")
    assert both == "False"
