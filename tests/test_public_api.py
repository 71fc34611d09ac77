"""The names ``cubehub`` exports: every one resolves, lazily, to what type checkers see."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import cubehub
from cubehub.errors import CubehubError, ExitCode

INIT = Path(cubehub.__file__)


def _type_checking_imports() -> dict[str, str]:
    """Name -> module of the imports under ``if TYPE_CHECKING:`` in ``cubehub/__init__.py``."""
    tree = ast.parse(INIT.read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.unparse(stmt)
                found |= {alias.name: stmt.module for alias in stmt.names}
    return found


def test_every_name_in_all_resolves_from_its_module() -> None:
    assert len(cubehub.__all__) == len(set(cubehub.__all__))
    for name in cubehub.__all__:
        value = getattr(cubehub, name)
        if name != "__version__":
            module = cubehub._EXPORTS[name]
            assert value is getattr(sys.modules[module], name), name
            assert inspect.getmodule(value) is sys.modules[module], f"{name} is re-exported"
    assert sorted(dir(cubehub)) == sorted(cubehub.__all__)


def test_type_checkers_see_the_same_names_from_the_same_modules() -> None:
    assert _type_checking_imports() == cubehub._EXPORTS
    assert set(cubehub.__all__) == {"__version__", *cubehub._EXPORTS}


def test_records_and_errors_are_exported() -> None:
    for name in (
        "JobPlan",
        "JobResult",
        "CompositeJob",
        "OutputGrid",
        "NormalizedItems",
        "SeasonCalendar",
    ):
        assert inspect.isclass(getattr(cubehub, name)), name
    errors = {
        name
        for name, value in vars(sys.modules["cubehub.errors"]).items()
        if inspect.isclass(value) and issubclass(value, CubehubError)
    }
    assert errors <= set(cubehub.__all__), "an error class is not exported"
    warnings = {
        name
        for name, value in vars(sys.modules["cubehub.errors"]).items()
        if inspect.isclass(value) and issubclass(value, UserWarning)
    }
    assert warnings and warnings <= set(cubehub.__all__), "a warning class is not exported"
    for name in errors:
        assert isinstance(getattr(cubehub, name).exit_code, ExitCode), name


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        cubehub.no_such_name  # noqa: B018


def test_import_cubehub_imports_no_heavy_module() -> None:
    """The exports are lazy: ``import cubehub`` leaves xarray, dask and stackstac unloaded."""
    code = (
        "import sys, cubehub; "
        "print(sorted(m for m in ('xarray', 'dask', 'stackstac', 'distributed') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout
