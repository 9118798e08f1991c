"""Fuzz ``decode``: any bytes give a Signature or ``DecodeError``, never another exception, a crash
or a hang; the compiled module gives exactly the twin's value or error text, and its fast path alone
never accepts what the twin rejects nor reads a different Signature.

    python tests/fuzz/fuzz_decode.py -max_total_time=60 [libFuzzer flags] [corpus dirs]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz._harness import Implementations, compare, run

IMPL = Implementations("_codec_py", "_codec_c")
from machinery.errors import DecodeError  # noqa: E402


def test_one_input(data: bytes) -> None:
    compare("decode", data, twin=IMPL.py.decode, compiled=IMPL.c.decode,
               fast_path=IMPL.c._decode_strict, error=DecodeError)


if __name__ == "__main__":
    run("decode", test_one_input)
