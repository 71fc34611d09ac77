"""A local cluster started by a script without ``if __name__ == "__main__":``, caught first.

Dask starts local workers as new processes ("spawn"), and each imports the script that
started them again. Code at the top of the script then runs once more in every worker: it
tries to start a cluster of its own, Python refuses, and all the user sees is "Nanny failed
to start" after a page of tracebacks. :func:`check_main_guard` finds the statement of the
script that is running and refuses it before any process starts, saying what to change.
"""

from __future__ import annotations

import ast
import multiprocessing
import sys
from functools import cache
from pathlib import Path
from types import FrameType

import dask.config

from cubehub.errors import InputError

__all__ = ["check_main_guard"]


def check_main_guard() -> None:
    """Raise :class:`InputError` if the script running now would start again in every worker.

    Nothing is checked where workers do not import the script: interactive sessions,
    notebooks, ``python -c``, and the ``fork`` start method.
    """
    method = dask.config.get("distributed.worker.multiprocessing-method", "spawn")
    if method == "fork" or multiprocessing.parent_process() is not None:
        return
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    frame = _main_module_frame(main.__dict__) if main is not None else None
    if not path or frame is None or not str(path).endswith(".py"):
        return
    if _statement_is_guarded(str(path), frame.f_lineno):
        return
    raise InputError(
        f"{path}, line {frame.f_lineno}, starts a local Dask cluster at the top level of the "
        "script; its worker processes import the script again and would start one each. Put "
        "the script's code under `if __name__ == \"__main__\":` (see the README's example)"
    )


def _main_module_frame(main_globals: dict[str, object]) -> FrameType | None:
    """The frame running the main script's top-level code, if it is on the stack."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is main_globals and frame.f_code.co_name == "<module>":
            return frame
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _statement_is_guarded(path: str, line: int) -> bool:
    """Whether the top-level statement of ``path`` at ``line`` is an ``if __name__ ==
    "__main__":`` block (unknown source counts as guarded: nothing to tell the user)."""
    for statement in _top_level_statements(path):
        end = statement.end_lineno or statement.lineno
        if statement.lineno <= line <= end:
            return isinstance(statement, ast.If) and _is_main_test(statement.test)
    return True


@cache
def _top_level_statements(path: str) -> tuple[ast.stmt, ...]:
    try:
        return tuple(ast.parse(Path(path).read_text()).body)
    except (OSError, SyntaxError, ValueError):
        return ()


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    values = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(values) == 1
