"""The layers of DESIGN.md: each imports only the layers listed before it.

core (no I/O) -> hot path (``machinery._speedups``) -> transport (``machinery.brokers``,
``machinery.backends``) -> runtime (everything else). Checked on the source, so a stray import
anywhere (even inside a function) fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "machinery"

CORE = {
    "errors", "jsonvalues", "signature", "task", "registry", "workflows", "states", "config", "urls", "timelimits",
    "limits", "signing",
}
LAYERS = ["core", "hot path", "transport", "runtime"]


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside the package (``machinery.x.y``)."""
    parts = module.split(".")[1:]
    if not parts:
        return "runtime"  # the package's __init__ re-exports every layer
    if parts[0] in CORE:
        return "core"
    if parts[0] == "_speedups":
        return "hot path"
    if parts[0] in ("brokers", "backends"):
        return "transport"
    return "runtime"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str | None = None) -> set[str]:
    """The ``machinery`` modules that the source at ``path`` (module ``module``) imports."""
    module = module or module_name(path)
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target != "machinery":  # "from machinery import X" is judged by X below
                found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "machinery" or m.startswith("machinery.")}


def violations(path: Path, module: str) -> list[str]:
    """Imports in ``path`` (module ``module``) that reach a later layer than its own."""
    own = layer_of(module)
    allowed = set(LAYERS[: LAYERS.index(own) + 1])
    return [
        f"{module} ({own}) imports {target} ({layer_of(target)})"
        for target in sorted(imported_modules(path, module))
        if target == "machinery" or layer_of(target) not in allowed
    ]


SOURCES = sorted(p for p in PACKAGE.rglob("*.py")) + sorted(PACKAGE.rglob("*.pyx")) + sorted(PACKAGE.rglob("*.pxi"))


def python_sources() -> list[Path]:
    return [p for p in SOURCES if p.suffix == ".py"]


@pytest.mark.parametrize("path", python_sources(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_module_imports_only_earlier_layers(path: Path) -> None:
    module = module_name(path)
    if module == "machinery":
        return  # the package root re-exports every layer
    assert violations(path, module) == []


def test_compiled_codec_imports_only_core_and_hot_path() -> None:
    for path in [p for p in SOURCES if p.suffix in (".pyx", ".pxi")]:
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("from machinery", "import machinery")):
                target = stripped.split()[1]
                assert layer_of(target) in ("core", "hot path"), f"{path.name}: {stripped}"


def test_brokers_never_import_the_worker() -> None:
    for path in (PACKAGE / "brokers").glob("*.py"):
        for target in imported_modules(path):
            assert not target.startswith(("machinery.worker", "machinery.execution", "machinery.app")), (
                f"{path.name} imports {target}"
            )


def test_the_layer_check_catches_a_bad_import(tmp_path: Path) -> None:
    source = tmp_path / "signature.py"
    source.write_text("from machinery.worker import Worker\nfrom . import app\nimport machinery.brokers.sqlite\n")
    found = violations(source, "machinery.signature")
    assert found == [
        "machinery.signature (core) imports machinery.app (runtime)",
        "machinery.signature (core) imports machinery.brokers.sqlite (transport)",
        "machinery.signature (core) imports machinery.worker (runtime)",
        "machinery.signature (core) imports machinery.worker.Worker (runtime)",
    ]
