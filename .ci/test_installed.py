"""Run the test suite against an installed machinery (a wheel), not the source tree: copies the
tests, their helpers and the pytest settings into a temporary directory that has no ``machinery``
package in it, and runs pytest there. cibuildwheel calls it for every wheel it builds.

    python .ci/test_installed.py PROJECT_DIR [pytest arguments...]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

COPIED = ("tests", "examples", "stubs", "pyproject.toml")


def main(argv: list[str]) -> int:
    project = Path(argv[0]).resolve()
    pytest_args = argv[1:] or ["-x", "-q", "-m", "not rabbitmq and not redis and not slow"]
    with tempfile.TemporaryDirectory(prefix="machinery-wheel-tests-") as tmp:
        for name in COPIED:
            source = project / name
            if source.is_dir():
                shutil.copytree(source, Path(tmp) / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, Path(tmp) / name)
        env = {**os.environ, "MACHINERY_REQUIRE_EXTENSIONS": "1"}
        check = "import machinery, sys; print(machinery.__file__); sys.exit(0 if machinery.USING_EXTENSIONS else 1)"
        if subprocess.call([sys.executable, "-c", check], cwd=tmp, env=env) != 0:
            print("the installed machinery does not use its compiled hot path", file=sys.stderr)
            return 1
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *pytest_args]
        return subprocess.call(command, cwd=tmp, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
