"""The hot path: message encoding/decoding, number-argument parsing and reading AMQP frames.

Each has two implementations with identical behaviour: compiled (Cython: ``_codec_c``,
``_frames_c``) and a typed pure-Python twin (``_codec_py``, ``_frames_py``). Each compiled module
is used when it was built and ``MACHINERY_NO_EXTENSIONS`` is not set; the two are loaded
independently, so one that fails to import leaves the other in use (``CODEC_COMPILED``,
``FRAMES_COMPILED``; ``USING_EXTENSIONS`` when both are). Type checkers always see the twins.
When a compiled module is missing (a build without a C compiler), importing warns once
(``RuntimeWarning``); ``MACHINERY_NO_EXTENSIONS=1`` chooses the twins without a warning.
"""

from __future__ import annotations

import os
import platform
import warnings
from typing import TYPE_CHECKING

from machinery._speedups._frames_py import Confirmed, Delivered

__all__ = [
    "CODEC_COMPILED",
    "FRAMES_COMPILED",
    "USING_EXTENSIONS",
    "Confirmed",
    "Delivered",
    "decode",
    "encode",
    "parse_number_args",
    "scan_frames",
]

NO_EXTENSIONS = bool(os.environ.get("MACHINERY_NO_EXTENSIONS")) or platform.python_implementation() != "CPython"

CODEC_COMPILED = FRAMES_COMPILED = False
if TYPE_CHECKING:
    from machinery._speedups._codec_py import decode, encode, parse_number_args
    from machinery._speedups._frames_py import scan_frames
else:
    missing: list[str] = []
    if not NO_EXTENSIONS:
        try:
            from machinery._speedups._codec_c import decode, encode, parse_number_args
        except ImportError as exc:
            missing.append(str(exc))
        else:
            CODEC_COMPILED = True
        try:
            from machinery._speedups._frames_c import scan_frames
        except ImportError as exc:
            missing.append(str(exc))
        else:
            FRAMES_COMPILED = True
    if not CODEC_COMPILED:
        from machinery._speedups._codec_py import decode, encode, parse_number_args
    if not FRAMES_COMPILED:
        from machinery._speedups._frames_py import scan_frames

    if missing:
        warnings.warn(
            f"machinery: the compiled hot path is not available ({'; '.join(missing)}); using the pure-Python "
            "twin, which is several times slower. Reinstall with a C compiler to build it, or set "
            "MACHINERY_NO_EXTENSIONS=1 to choose the pure-Python build without this warning.",
            RuntimeWarning,
            stacklevel=2,
        )

#: Whether both the codec and the frame scanner are the compiled ones.
USING_EXTENSIONS: bool = CODEC_COMPILED and FRAMES_COMPILED
