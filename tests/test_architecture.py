"""The layers of docs/architecture.md, enforced: every import (module-level or inside a
function) goes to the same layer or a lower one, no two modules import each other through
any chain, and only tests import ``cubehub.testing``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
#: Layers from the bottom up; a module's layer is that of its longest matching prefix.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "cubehub",
        "cubehub.errors",
        "cubehub.credentials",
        "cubehub.config",
        "cubehub.grid",
        "cubehub.seasons",
        "cubehub.tiles",
    ),
    ("cubehub.compute",),
    ("cubehub.catalog",),
    ("cubehub.reader", "cubehub.cube", "cubehub.cube_view"),
    ("cubehub.composite", "cubehub.gapfill"),
    ("cubehub.output",),
    ("cubehub.clusters",),
    ("cubehub.jobspec", "cubehub.job_defaults"),
    (
        "cubehub.pipeline",
        "cubehub.planning",
        "cubehub.batch",
        "cubehub.empty_seasons",
        "cubehub.fill_job",
        "cubehub.writing",
        "cubehub.learn",
        "cubehub.maps",
    ),
    ("cubehub.notebook", "cubehub.demo"),
    ("cubehub.cli", "cubehub.__main__"),
    ("cubehub.testing",),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for k, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, rank = len(name), k
    assert rank >= 0, f"{module} is in no layer of docs/architecture.md; add it there and here"
    return rank


def imports_of(path: Path) -> set[str]:
    """cubehub modules ``path`` imports (``from cubehub.x import y`` counts y when it is a module)."""
    modules = {module_name(p) for p in SRC.rglob("*.py")}
    tree = ast.parse(path.read_text())
    # Imports only type checkers run (`if TYPE_CHECKING:`) do not count.
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If)
        and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for inner in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cubehub")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cubehub"):
            submodules = {f"{node.module}.{a.name}" for a in node.names} & modules
            found |= submodules
            if len(submodules) < len(node.names):  # names defined by the module itself
                found.add(node.module)
    return {m for m in found if m in modules}


GRAPH = {module_name(p): imports_of(p) for p in sorted(SRC.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_go_down_never_up(module: str) -> None:
    upward = sorted(m for m in GRAPH[module] if m != "cubehub" and layer_of(m) > layer_of(module))
    assert not upward, f"{module} (layer {layer_of(module)}) imports higher layers: {upward}"


def test_no_product_module_imports_testing() -> None:
    users = sorted(
        m
        for m, deps in GRAPH.items()
        if not m.startswith("cubehub.testing")
        and any(d.startswith("cubehub.testing") for d in deps)
    )
    assert not users, users


def test_no_import_cycles() -> None:
    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [d for d in GRAPH[start] if d != "cubehub"]
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo += [d for d in GRAPH.get(m, ()) if d != "cubehub"]
        return seen

    cycles = sorted(m for m in GRAPH if m != "cubehub" and m in reach(m))
    assert not cycles, f"modules on an import cycle: {cycles}"


def test_no_module_is_named_after_a_standard_library_module() -> None:
    import sys

    clashes = sorted(m for m in GRAPH if m.rsplit(".", 1)[-1] in sys.stdlib_module_names)
    assert not clashes, clashes


def test_no_module_imports_another_modules_private_names() -> None:
    private = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cubehub"):
                private += [
                    f"{module_name(path)}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert not private, "make them public or move them where they are used: " + ", ".join(private)
