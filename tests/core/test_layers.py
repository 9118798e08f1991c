"""The layers of ``machinery/layers.py``: each module imports only its own layer and the layers
listed before it, and no module imports itself again through others (no cycles).

Checked on the source, so a stray import anywhere (even inside a function) fails here; imports
under ``if TYPE_CHECKING:`` count for layers, not for cycles (they never run). ARCHITECTURE.md's
layer table must list the same modules.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from machinery.layers import LAYERS as LAYER_TABLE

PACKAGE = Path(__file__).resolve().parents[2] / "machinery"
ARCHITECTURE = PACKAGE.parent / "ARCHITECTURE.md"

LAYERS = list(LAYER_TABLE)
_LAYER_OF = {name.rstrip("/"): layer for layer, names in LAYER_TABLE.items() for name in names}


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside the package (``machinery.x.y``)."""
    parts = module.split(".")[1:]
    if not parts:
        return "runtime"  # the package's __init__ re-exports every layer
    return _LAYER_OF.get(parts[0], "unlisted")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """The ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                inside.update(id(n) for n in ast.walk(stmt))
    return inside


def imported_modules(path: Path, module: str | None = None, *, at_run_time: bool = False) -> set[str]:
    """The ``machinery`` modules that the source at ``path`` (module ``module``) imports (with
    ``at_run_time``, not counting those under ``if TYPE_CHECKING:``)."""
    module = module or module_name(path)
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree) if at_run_time else set()
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
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


def test_every_module_is_in_a_layer() -> None:
    unlisted = sorted(m for m in map(module_name, python_sources()) if m != "machinery" and layer_of(m) == "unlisted")
    assert unlisted == [], "add these to machinery/layers.py"


def test_architecture_md_lists_the_layers_of_the_code() -> None:
    """Each row of ARCHITECTURE.md's layer table names the modules of ``LAYERS``, in order."""
    rows = re.findall(r"^\| \d\. ([a-z ]+?)(?: \(.*?\))? \| (.*?) \|", ARCHITECTURE.read_text(), re.M)
    documented = {layer: set(re.findall(r"`([\w/]+?)(?:\.py)?`", where)) for layer, where in rows}
    assert list(documented) == LAYERS
    for layer, names in LAYER_TABLE.items():
        assert documented[layer] == set(names), layer


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle in ``graph`` (module -> the modules it imports), or []."""
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> list[str]:
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_stack:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in done:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        on_stack.discard(node)
        done.add(node)
        return []

    for start in sorted(graph):
        if start not in done:
            found = visit(start)
            if found:
                return found
    return []


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports when it runs (``from machinery.x import name`` counts
    as importing ``machinery.x``, or ``machinery.x.name`` when that is a module)."""
    modules = {module_name(p): p for p in python_sources()}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        if module == "machinery":
            continue  # the package root re-exports every layer
        targets = {t for t in imported_modules(path, module, at_run_time=True) if t in modules and t != module}
        graph[module] = {t for t in targets if t != "machinery"}
    return graph


def test_no_module_imports_itself_through_others() -> None:
    assert _cycle(import_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_the_sqlite_plumbing_imports_neither_brokers_nor_backends() -> None:
    for path in (PACKAGE / "sqlite").glob("*.py"):
        for target in imported_modules(path):
            assert not target.startswith(("machinery.brokers", "machinery.backends")), f"{path.name} imports {target}"


def test_brokers_and_backends_do_not_import_each_other() -> None:
    for folder, other in (("brokers", "machinery.backends"), ("backends", "machinery.brokers")):
        for path in (PACKAGE / folder).glob("*.py"):
            for target in imported_modules(path):
                assert not target.startswith(other), f"{folder}/{path.name} imports {target}"


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
