"""Round trip (encode + decode) of the example 3-step chain message, per operation.

Compares the compiled codec, the pure-Python twin, the stdlib ``json`` (dumps + loads of the
equivalent dict) and ``msgspec`` (a ``msgspec.Struct`` of the same schema, nested callbacks
included), and checks issue 2's targets as ratios within this one run: compiled >= 5x faster than
the twin, and within 1.5x of msgspec. Prints the machine and its load, since other work on the
machine skews absolute figures.

Run: ``.venv/bin/python -m benchmarks.codec [--repeat N]`` (msgspec is in the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import timeit
from collections.abc import Callable
from typing import Any

import msgspec

from benchmarks.machine import describe, load
from machinery._speedups import _codec_py
from machinery.signature import Signature
from machinery.workflows import chain

TARGET_VS_TWIN = 5.0
TARGET_VS_MSGSPEC = 1.5


class MsgspecSignature(msgspec.Struct, kw_only=True):
    """The wire schema as a msgspec Struct: the reference for a typed JSON decoder."""

    UUID: str = ""
    Name: str
    RoutingKey: str = ""
    ETA: str | None = None
    GroupUUID: str = ""
    GroupTaskCount: int = 0
    Args: list[Any] = msgspec.field(default_factory=list)  # JSON values
    Headers: dict[str, Any] = msgspec.field(default_factory=dict)  # JSON values
    Priority: int = 0
    Immutable: bool = False
    RetryCount: int = 0
    RetryTimeout: int = 0
    OnSuccess: list[MsgspecSignature] | None = None
    OnError: list[MsgspecSignature] | None = None
    ChordCallback: MsgspecSignature | None = None


def example_chain() -> Signature:
    """The example chain ``add(1, 1) -> add(5, 6) -> multiply(4)``, as its first step."""
    return chain(Signature("add", [1, 1]), Signature("add", [5, 6]), Signature("multiply", [4])).head


def machine() -> str:
    return describe(platform.python_implementation())


def best_per_call(func: Callable[[], object], repeat: int) -> float:
    """The best time of one call in microseconds, over ``repeat`` timed batches."""
    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    number = max(number, 1)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7, help="timed batches per case; the best counts")
    options = parser.parse_args(argv)

    try:
        compiled = importlib.import_module("machinery._speedups._codec_c")
    except ImportError:
        print("the compiled codec is not built: run `pip install -e .` (or setup.py build_ext --inplace)")
        return 1
    encode_c: Callable[[Signature], bytes] = compiled.encode
    decode_c: Callable[[bytes], Signature] = compiled.decode
    encode_py, decode_py = _codec_py.encode, _codec_py.decode

    sig = example_chain()
    message = encode_c(sig)
    assert message == encode_py(sig) and decode_c(message) == sig
    plain = json.loads(message)
    msgspec_encoder = msgspec.json.Encoder()
    msgspec_decoder = msgspec.json.Decoder(MsgspecSignature)
    struct = msgspec_decoder.decode(message)
    assert msgspec.json.decode(msgspec_encoder.encode(struct)) == plain

    load_before = load()
    cases: dict[str, Callable[[], object]] = {
        "compiled codec": lambda: decode_c(encode_c(sig)),
        "pure-Python twin": lambda: decode_py(encode_py(sig)),
        "stdlib json (dict)": lambda: json.loads(json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode()),
        "msgspec Struct": lambda: msgspec_decoder.decode(msgspec_encoder.encode(struct)),
    }
    parts: dict[str, Callable[[], object]] = {
        "compiled encode": lambda: encode_c(sig),
        "compiled decode": lambda: decode_c(message),
        "msgspec encode": lambda: msgspec_encoder.encode(struct),
        "msgspec decode": lambda: msgspec_decoder.decode(message),
    }
    times = {name: best_per_call(func, options.repeat) for name, func in cases.items()}
    part_times = {name: best_per_call(func, options.repeat) for name, func in parts.items()}

    print("codec round trip (encode + decode) of the example 3-step chain message")
    print(f"machine: {machine()}")
    print(f"load average (1/5/15 min): before {load_before}, after {load()}")
    print(f"message: {len(message)} bytes (msgspec writes {len(msgspec_encoder.encode(struct))})")
    print(f"best of {options.repeat} batches, microseconds per round trip:")
    for name, us in times.items():
        print(f"  {name:<22}{us:8.2f} us")
    print("  parts:", ", ".join(f"{name} {us:.2f} us" for name, us in part_times.items()))
    vs_twin = times["pure-Python twin"] / times["compiled codec"]
    vs_msgspec = times["compiled codec"] / times["msgspec Struct"]
    print(
        f"twin / compiled:    {vs_twin:6.2f}x  "
        f"(target >= {TARGET_VS_TWIN}x: {'met' if vs_twin >= TARGET_VS_TWIN else 'MISSED'})"
    )
    print(
        f"compiled / msgspec: {vs_msgspec:6.2f}x  "
        f"(target <= {TARGET_VS_MSGSPEC}x: {'met' if vs_msgspec <= TARGET_VS_MSGSPEC else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
