"""The hot path: message encoding/decoding, number-argument parsing and reading AMQP frames.

Each has two implementations with identical behaviour: compiled (Cython: ``_codec_c``,
``_frames_c``) and a typed pure-Python twin (``_codec_py``, ``_frames_py``). The compiled ones are
used when they were built and ``MACHINERY_NO_EXTENSIONS`` is not set; type checkers always see the
twins. When the compiled modules are missing (a build without a C compiler), importing warns
once (``RuntimeWarning``); ``MACHINERY_NO_EXTENSIONS=1`` chooses the twins without a warning.
"""

from __future__ import annotations

import os
import platform
import warnings
from typing import TYPE_CHECKING

from machinery._speedups._frames_py import Confirmed, Delivered

__all__ = ["USING_EXTENSIONS", "Confirmed", "Delivered", "decode", "encode", "parse_number_args", "scan_frames"]

NO_EXTENSIONS = bool(os.environ.get("MACHINERY_NO_EXTENSIONS")) or platform.python_implementation() != "CPython"

if TYPE_CHECKING:
    from machinery._speedups._codec_py import decode, encode, parse_number_args
    from machinery._speedups._frames_py import scan_frames

    USING_EXTENSIONS: bool
elif NO_EXTENSIONS:
    from machinery._speedups._codec_py import decode, encode, parse_number_args
    from machinery._speedups._frames_py import scan_frames

    USING_EXTENSIONS = False
else:
    try:
        from machinery._speedups._codec_c import decode, encode, parse_number_args
        from machinery._speedups._frames_c import scan_frames
    except ImportError as exc:
        from machinery._speedups._codec_py import decode, encode, parse_number_args
        from machinery._speedups._frames_py import scan_frames

        USING_EXTENSIONS = False
        warnings.warn(
            f"machinery: the compiled hot path is not available ({exc}); using the pure-Python twin, which is "
            "several times slower. Reinstall with a C compiler to build it, or set MACHINERY_NO_EXTENSIONS=1 "
            "to choose the pure-Python build without this warning.",
            RuntimeWarning,
            stacklevel=2,
        )
    else:
        USING_EXTENSIONS = True
