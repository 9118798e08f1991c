"""Fuzz ``scan_frames``: any bytes, offset and channels give the same (bytes read, frames read,
deliveries, confirms) in both implementations, never an exception (only ``ValueError`` for an offset
outside the data), a crash or a hang, and what was read lies within the data.

    python tests/fuzz/fuzz_scan_frames.py -max_total_time=60 [libFuzzer flags] [corpus dirs]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


from tests.fuzz._harness import Implementations, run

IMPL = Implementations("_frames_py", "_frames_c")


def _outcome(scan: object, data: bytes, offset: int, deliver: int, confirm: int) -> object:
    try:
        return scan(data, offset, deliver, confirm)  # type: ignore[operator]
    except ValueError as exc:
        if 0 <= offset <= len(data):
            raise AssertionError(f"ValueError for offset {offset} inside {len(data)} bytes: {exc}") from None
        return ("ValueError", str(exc))


def test_one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    # Three leading bytes choose the channels and the offset; the rest is the stream.
    deliver, confirm, shift, stream = data[0] & 3, data[1] & 3, data[2] % 11 - 2, data[3:]
    offset = min(shift, len(stream) + 1) if shift >= 0 else shift
    expected = _outcome(IMPL.py.scan_frames, stream, offset, deliver, confirm)
    got = _outcome(IMPL.c.scan_frames, stream, offset, deliver, confirm)
    if got != expected:
        raise AssertionError(f"compiled scan {got!r} != twin {expected!r} for {stream!r} at {offset}")
    if isinstance(expected, tuple) and expected and isinstance(expected[0], int):
        read = expected[0]
        if read < 0 or offset + read > len(stream):
            raise AssertionError(f"read {read} bytes from {offset} of {len(stream)}")


if __name__ == "__main__":
    run("scan_frames", test_one_input)
