"""``python -m machinery._speedups.check``: exit 1 with one line when the compiled hot path is not
in use and the pure-Python build was not asked for (``MACHINERY_NO_EXTENSIONS=1``); ``make test``
runs it first, so a build that silently fell back cannot pass."""

from __future__ import annotations

import sys

from machinery._speedups import NO_EXTENSIONS, USING_EXTENSIONS

__all__ = ["main"]


def main() -> int:
    if USING_EXTENSIONS or NO_EXTENSIONS:
        return 0
    print(
        "machinery: the compiled hot path did not build (see the output of make deps / pip install -v); "
        "install a C compiler and run make deps again, or ask for the pure-Python build with "
        "MACHINERY_NO_EXTENSIONS=1",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
