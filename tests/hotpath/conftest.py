"""The codec suite runs against both implementations: the pure twin and the compiled module.

``codec`` is parametrized over them (the compiled one marked ``c_extension``; it skips when the
module is not built). The fixture is typed as a Protocol so strict mypy checks every call.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol, TypeVar, cast

import pytest
from _pytest.mark.structures import ParameterSet

from machinery._speedups import _codec_py
from machinery.signature import Signature

T = TypeVar("T")


class CodecModule(Protocol):
    """What both codec modules provide."""

    def encode(self, signature: Signature) -> bytes: ...

    def decode(self, data: bytes) -> Signature: ...

    def parse_number_args(self, args: Sequence[object]) -> list[float]: ...


class CompiledCodecModule(CodecModule, Protocol):
    """The compiled module also exposes its fast paths alone (no hand-over to the twin)."""

    def _encode_strict(self, signature: Signature) -> bytes: ...

    def _decode_strict(self, data: bytes) -> Signature: ...


def import_compiled(name: str) -> object | None:
    """The compiled module ``machinery._speedups.<name>``, or None when it was not built."""
    try:
        return importlib.import_module(f"machinery._speedups.{name}")
    except ImportError:
        return None


def twin_params(twin: object, compiled: object | None, what: str) -> list[ParameterSet]:
    """Test parameters for the pure twin and the compiled module (marked ``c_extension``; skipped
    when it was not built)."""
    return [
        pytest.param(twin, id="py"),
        pytest.param(compiled, id="c", marks=[
            pytest.mark.c_extension, pytest.mark.skipif(compiled is None, reason=f"the compiled {what} is not built"),
        ]),
    ]


PY_CODEC: CodecModule = _codec_py
C_CODEC = cast(CompiledCodecModule | None, import_compiled("_codec_c"))
CODEC_PARAMS = twin_params(PY_CODEC, C_CODEC, "codec")
NO_C = pytest.mark.skipif(C_CODEC is None, reason="the compiled codec is not built")


@pytest.fixture(params=CODEC_PARAMS, scope="session")
def codec(request: pytest.FixtureRequest) -> CodecModule:
    """Each codec implementation in turn."""
    return cast(CodecModule, request.param)


@pytest.fixture(params=CODEC_PARAMS, scope="session")
def encoder(request: pytest.FixtureRequest) -> CodecModule:
    """Each implementation as the encoder (paired with every ``decoder``)."""
    return cast(CodecModule, request.param)


@pytest.fixture(params=CODEC_PARAMS, scope="session")
def decoder(request: pytest.FixtureRequest) -> CodecModule:
    """Each implementation as the decoder (paired with every ``encoder``)."""
    return cast(CodecModule, request.param)


def built(module: T | None, what: str) -> T:
    """``module``, or skip the test when the compiled ``what`` is not built."""
    if module is None:
        pytest.skip(f"the compiled {what} is not built")
    return module


@pytest.fixture(scope="session")
def compiled() -> CompiledCodecModule:
    """The compiled codec (skips when it is not built)."""
    return built(C_CODEC, "codec")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """An exception swallowed inside the compiled module (reported as "unraisable") fails the test."""
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"))
