"""Every third-party import of the library is declared in pyproject.toml.

A module imported when cubehub is imported (an import at module level) needs a core
dependency, since a plain ``pip install cubehub`` brings only those; one imported inside a
function or a ``try`` block may come from an extra. ``cubehub.testing`` is for the test suite
and may use the ``test`` extra.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cubehub"


#: Subpackages that exist for one extra (cubehub/learn -> [learn]) -> that extra.
EXTRA_PACKAGES = {"learn": "learn", "maps": "maps"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_canonical(Requirement(r).name) for r in project["dependencies"]}
    extras = {
        extra: {_canonical(Requirement(r).name) for r in reqs}
        for extra, reqs in project["optional-dependencies"].items()
    }
    return core, extras


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """(top-level module, imported at module level, line) of every absolute import."""
    tree = ast.parse(path.read_text())
    # Imports in the module body run at import; those in functions, `try` blocks and
    # `if TYPE_CHECKING:` do not (or may fail on purpose).
    top_level = {id(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(n.split(".")[0], id(node) in top_level, node.lineno) for n in names]
    return found


def test_every_import_is_a_declared_dependency() -> None:
    core, extras = _declared()
    optional = set().union(*extras.values())
    providers = packages_distributions()
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        testing = "testing" in path.relative_to(SRC).parts
        for module, at_import, line in _imports(path):
            if module in sys.stdlib_module_names or module in ("cubehub", "__future__"):
                continue
            dists = {_canonical(d) for d in providers.get(module, [module])}
            allowed = core | (extras["test"] if testing else set())
            # A subpackage that only its extra's commands import may use the extra anywhere.
            package = path.relative_to(SRC).parts[0]
            if package in EXTRA_PACKAGES:
                allowed = allowed | extras[EXTRA_PACKAGES[package]]
            if not at_import and not testing:
                allowed = allowed | optional
            if not dists & allowed:
                where = f"{path.relative_to(ROOT)}:{line}"
                problems.append(f"{where} imports {module} (from {sorted(dists)})")
    assert not problems, "undeclared dependencies:\n" + "\n".join(problems)


def test_the_extras_subpackages_are_not_imported_by_the_core() -> None:
    # What lets cubehub/learn and cubehub/maps import their extras at module level.
    extra_packages = tuple(f"cubehub.{p}" for p in EXTRA_PACKAGES)
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).parts[0] in (*EXTRA_PACKAGES, "cli", "testing"):
            continue  # the extras' own code, and commands that import them when run
        for node in ast.parse(path.read_text()).body:
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            problems += [
                f"{path.relative_to(ROOT)}:{node.lineno} imports {n}"
                for n in names
                if n.startswith(extra_packages)
            ]
    assert not problems, "imported at module level by the core:\n" + "\n".join(problems)
