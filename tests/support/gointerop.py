"""The Go program of ``tests/interop/go`` (Go Machinery v1's structs, encoding/json, stdlib only),
built once per test session and driven line by line.

Tests that need it skip where no Go toolchain is installed, and fail instead when
``MACHINERY_REQUIRE_GO=1`` (as ``.ci/run`` sets, after installing Debian's ``golang-go``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

__all__ = ["GoProgram", "SOURCE", "build_go_program"]

SOURCE = Path(__file__).resolve().parent.parent / "interop" / "go"


class GoProgram:
    """The built program: each method sends one JSON document per line and reads one back."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _run(self, mode: str, lines: Sequence[bytes]) -> list[Any]:
        proc = subprocess.run(
            [str(self.path), mode], input=b"\n".join(lines) + b"\n", capture_output=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        out = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        assert len(out) == len(lines), proc.stdout[:2000]
        return out

    def decode(self, bodies: Sequence[bytes]) -> list[dict[str, Any]]:
        """Each message body read as a Go Machinery v1 worker reads it, every argument (callbacks'
        too) converted to its Go type: ``{"ok": True, "tasks": [...]}`` or ``{"ok": False, "error": ...}``."""
        return self._run("decode", bodies)

    def encode(self, signatures: Sequence[dict[str, Any]]) -> list[bytes]:
        """Each signature (Go's field names, typed args with JSON values) made of real Go values and
        written by Go's ``json.Marshal``."""
        out = self._run("encode", [json.dumps(s).encode() for s in signatures])
        for doc in out:
            assert doc.get("ok", True) is not False, doc
        return [json.dumps(doc, separators=(",", ":")).encode() for doc in out]

    def read_states(self, documents: Sequence[bytes]) -> list[dict[str, Any]]:
        """Go Machinery v1 ``TaskState`` documents read by Go, results converted to Go values."""
        return self._run("state", documents)

    def read_groups(self, documents: Sequence[bytes]) -> list[dict[str, Any]]:
        """Go Machinery v1 ``GroupMeta`` documents read into Go's struct and written back."""
        return self._run("group", documents)

    def succeed(self, message: bytes, results: Sequence[dict[str, Any]]) -> list[bytes]:
        """The success callbacks a Go worker sends after the task of ``message`` returned the typed
        ``results`` (each appended to each callback's args unless the task is immutable), each as
        Go's ``json.Marshal`` writes it."""
        line = b'{"Message":' + message + b',"Results":' + json.dumps(list(results)).encode() + b"}"
        [out] = self._run("succeed", [line])
        assert out["ok"], out
        return [json.dumps(cb, separators=(",", ":")).encode() for cb in out["callbacks"]]


_built: dict[str, GoProgram] = {}


def build_go_program() -> GoProgram:
    """The program, built on first use (skips, or fails under ``MACHINERY_REQUIRE_GO``, without Go)."""
    if "program" in _built:
        return _built["program"]
    go = shutil.which("go")
    if go is None:
        message = "no Go toolchain (apt-get install golang-go)"
        if os.environ.get("MACHINERY_REQUIRE_GO"):
            pytest.fail(f"{message}, and MACHINERY_REQUIRE_GO requires it")
        pytest.skip(message)
    out_dir = Path(tempfile.mkdtemp(prefix="machinery-go-"))
    env = {**os.environ, "GOCACHE": str(out_dir / "cache"), "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    env.setdefault("HOME", str(out_dir))
    binary = out_dir / "interop"
    proc = subprocess.run([go, "build", "-o", str(binary), "."], cwd=SOURCE, env=env, capture_output=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    _built["program"] = GoProgram(binary)
    return _built["program"]
