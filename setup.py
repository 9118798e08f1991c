"""Builds the compiled hot path (codec and AMQP frame scanner) with Cython, or a pure-Python package when
that is not possible.

``MACHINERY_NO_EXTENSIONS=1`` (or a non-CPython interpreter) builds no extension; a missing
compiler falls back to the pure package with a loud message, unless ``MACHINERY_REQUIRE_EXTENSIONS=1``.
"""

import os
import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NO_EXTENSIONS = bool(os.environ.get("MACHINERY_NO_EXTENSIONS")) or platform.python_implementation() != "CPython"
REQUIRE_EXTENSIONS = bool(os.environ.get("MACHINERY_REQUIRE_EXTENSIONS"))
BANNER = "*" * 78
#: No debug information in the compiled modules (Python's own CFLAGS carry -g): 202 KB instead of
#: 1.18 MB for the codec, 67 KB instead of 304 KB for the frame scanner (x86_64, gcc).
NO_DEBUG = [] if sys.platform == "win32" else ["-g0"]


def say(message: str, *, loud: bool = False) -> None:
    """``message`` on stderr, framed. ``loud`` also writes it to the controlling terminal, if there is
    one: pip hides a build's stderr unless ``-v``, and a build that fell back must not go unnoticed."""
    text = f"{BANNER}\n* machinery: {message}\n{BANNER}\n"
    sys.stderr.write(text)
    sys.stderr.flush()
    if loud:
        try:
            with open("/dev/tty", "w") as tty:
                tty.write(text)
        except OSError:
            pass  # no terminal (CI logs show stderr)


class OptionalBuildExt(build_ext):
    """build_ext that falls back to the pure-Python twin when compiling fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            self._fallback(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._fallback(exc)
        else:
            say(f"built the compiled module {ext.name}")

    def _fallback(self, exc: Exception) -> None:
        if REQUIRE_EXTENSIONS:
            raise exc
        if not self._warned:
            self._warned = True
            say(
                f"WARNING: could not compile the hot path ({exc}); installing the pure-Python build, several "
                "times slower (install a C compiler and reinstall to get the compiled one)",
                loud=True,
            )

    _warned = False


if NO_EXTENSIONS:
    say("MACHINERY_NO_EXTENSIONS is set (or not CPython): building the pure-Python package")
    ext_modules = []
else:
    from Cython.Build import cythonize

    ext_modules = cythonize(
        [
            Extension(f"machinery._speedups.{name}", [f"machinery/_speedups/{name}.pyx"], extra_compile_args=NO_DEBUG)
            for name in ("_codec_c", "_frames_c")
        ],
        # The generated C goes under build/, never beside the sources: it is not package data and
        # cannot end up in a wheel (the sdist carries the .pyx/.pxi sources; Cython is a build requirement).
        build_dir="build/cython",
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
            "cdivision": True,
        },
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
