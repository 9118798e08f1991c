"""The hot path: message encoding/decoding and number-argument parsing.

Two implementations with identical behaviour: the compiled ``_codec_c`` (Cython) and the typed
pure-Python twin ``_codec_py``. The compiled one is used when it was built and
``MACHINERY_NO_EXTENSIONS`` is not set; type checkers always see the twin.
"""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING

__all__ = ["USING_EXTENSIONS", "decode", "encode", "parse_number_args"]

NO_EXTENSIONS = bool(os.environ.get("MACHINERY_NO_EXTENSIONS")) or platform.python_implementation() != "CPython"

if TYPE_CHECKING:
    from machinery._speedups._codec_py import decode, encode, parse_number_args

    USING_EXTENSIONS: bool
elif NO_EXTENSIONS:
    from machinery._speedups._codec_py import decode, encode, parse_number_args

    USING_EXTENSIONS = False
else:
    try:
        from machinery._speedups._codec_c import decode, encode, parse_number_args
    except ImportError:
        from machinery._speedups._codec_py import decode, encode, parse_number_args

        USING_EXTENSIONS = False
    else:
        USING_EXTENSIONS = True
