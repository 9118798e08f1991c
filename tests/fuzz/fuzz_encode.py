"""Fuzz the ``encode`` round trip: Signatures built from the fuzzer's bytes (any JSON values, text
with lone surrogates, huge ints, non-finite floats, nested callbacks, ETAs) encode to the same bytes
in both implementations or fail with the same ``EncodeError``, and whatever encodes decodes (with
either decoder) to an equal Signature. Building the Signature may refuse values with ``TypeError`` /
``ValueError`` (documented), which ends that input.

    python tests/fuzz/fuzz_encode.py -max_total_time=60 [libFuzzer flags] [corpus dirs]
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import atheris

from tests.fuzz._harness import Implementations, compare, run

IMPL = Implementations("_codec_py", "_codec_c")
from machinery.errors import EncodeError  # noqa: E402
from machinery.signature import Signature  # noqa: E402

_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def _value(fdp: atheris.FuzzedDataProvider, depth: int) -> object:
    kind = fdp.ConsumeIntInRange(0, 9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 24))
    if kind == 3:
        return fdp.ConsumeRegularFloat()
    if kind == 4:
        return fdp.ConsumeFloat()  # may be nan or inf: not JSON, refused
    if kind in (5, 6):
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 12))  # may hold lone surrogates
    if kind == 7:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    if kind == 8:
        return {fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 6)): _value(fdp, depth + 1)
                for _ in range(fdp.ConsumeIntInRange(0, 4))}
    return tuple(_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3)))


def _signature(fdp: atheris.FuzzedDataProvider, depth: int) -> Signature:
    callbacks = depth < 3
    eta = None
    if fdp.ConsumeBool():
        eta = _EPOCH + timedelta(microseconds=fdp.ConsumeIntInRange(-(10**15), 10**16))
    return Signature(
        fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 16)),
        [_value(fdp, 1) for _ in range(fdp.ConsumeIntInRange(0, 5))],  # type: ignore[misc]
        routing_key=fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 8)),
        immutable=fdp.ConsumeBool(),
        on_success=[_signature(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 2 if callbacks else 0))],
        on_error=[_signature(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 1 if callbacks else 0))],
        uuid=fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 40)) if fdp.ConsumeBool() else None,
        eta=eta,
        group_uuid=fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 8)),
        group_task_count=fdp.ConsumeIntInRange(-1, 2**40),
        headers={fdp.ConsumeUnicode(4): _value(fdp, 1) for _ in range(fdp.ConsumeIntInRange(0, 3))},  # type: ignore[misc]
        priority=fdp.ConsumeIntInRange(-1, 300),
        retry_count=fdp.ConsumeIntInRange(-1, 2**33),
        retry_timeout=fdp.ConsumeIntInRange(-1, 2**33),
        chord_callback=_signature(fdp, depth + 1) if callbacks and fdp.ConsumeIntInRange(0, 3) == 0 else None,
    )


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    try:
        signature = _signature(fdp, 1)
    except (TypeError, ValueError):
        return  # the Signature refused a value: documented, not the codec's concern
    expected = compare("encode", signature, twin=IMPL.py.encode, compiled=IMPL.c.encode,
                          fast_path=IMPL.c._encode_strict, error=EncodeError)
    if not isinstance(expected, bytes):
        return
    for decode in (IMPL.py.decode, IMPL.c.decode):
        back = decode(expected)
        if back != signature:
            raise AssertionError(f"{decode.__module__}.decode(encode(s)) = {back!r} != {signature!r}")


if __name__ == "__main__":
    run("encode", test_one_input)
