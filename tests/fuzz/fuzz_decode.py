"""Fuzz ``decode``: any bytes give a Signature or ``DecodeError``, never another exception, a crash
or a hang; the compiled module gives exactly the twin's value or error text, and its fast path alone
never accepts what the twin rejects nor reads a different Signature.

    python tests/fuzz/fuzz_decode.py -max_total_time=60 [libFuzzer flags] [corpus dirs]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz._harness import Implementations, run

IMPL = Implementations("_codec_py", "_codec_c")
from machinery.errors import DecodeError  # noqa: E402


def _outcome(decode: object, data: bytes) -> object:
    try:
        return decode(data)  # type: ignore[operator]
    except DecodeError as exc:
        return ("DecodeError", str(exc))


def test_one_input(data: bytes) -> None:
    expected = _outcome(IMPL.py.decode, data)
    got = _outcome(IMPL.c.decode, data)
    if got != expected:
        raise AssertionError(f"compiled decode {got!r} != twin {expected!r} for {data!r}")
    try:
        strict = IMPL.c._decode_strict(data)
    except SystemError:
        raise  # a C-level error ("returned NULL without setting an exception") is a bug, not a hand-over
    except Exception:
        return  # the fast path handed over (to the twin, whose answer was checked above)
    if strict != expected:
        raise AssertionError(f"compiled fast path read {strict!r}, twin {expected!r} for {data!r}")


if __name__ == "__main__":
    run("decode", test_one_input)
