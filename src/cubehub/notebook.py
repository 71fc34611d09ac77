"""Notebook helpers: Dask progress, the command line, and one-line errors.

``%load_ext cubehub.notebook`` shows cubehub's own errors (bad input, data, cluster) as one
line with what to do, as the command line does, instead of a traceback.

:func:`show_progress` is Dask's progress bar for work on a cluster: the notebook widget when
ipywidgets is installed, Dask's text bar otherwise. :func:`run_command` runs the ``cubehub``
command by this kernel's own Python, so it works where the kernel's PATH does not hold it.
The demo archive for notebooks is :func:`cubehub.demo.start_demo`.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from distributed import futures_of, progress, wait

from cubehub.clusters.progress import display_widget, have_widgets, in_notebook
from cubehub.errors import (
    ClusterError,
    CubehubError,
    DataError,
    ExitCode,
    InputError,
    ServerError,
)

__all__ = ["command", "load_ipython_extension", "run_command", "show_progress"]


def show_progress(*work: Any) -> None:
    """Show Dask's progress of ``work`` on the cluster, and return when the work is done.

    Args:
        work: futures, or Dask collections persisted on a client (``client.persist(ds)``).

    In a notebook with ipywidgets this displays Dask's progress widget in the cell; otherwise
    Dask's text bar, which streams live into a notebook too. Either way it returns once the
    work has finished, so the next line sees it done (use Dask's own
    ``distributed.progress`` for a widget that leaves the notebook free meanwhile).

    A failed task ends the bar; its error is raised by ``.result()`` or ``.compute()``.

    Example:
        >>> composite = client.persist(composite)  # doctest: +SKIP
        >>> show_progress(composite)  # doctest: +SKIP
    """
    futures = futures_of(list(work))
    if not futures:
        raise InputError("nothing to show: pass futures or collections persisted on a Dask client")
    if in_notebook() and have_widgets():
        display_widget(futures)
        wait(futures)
    else:
        progress(futures, notebook=False)


def command(*args: str) -> list[str]:
    """The ``cubehub`` command line with ``args``, run by this very Python.

    ``[sys.executable, "-m", "cubehub", *args]``: it works in a kernel whose PATH lacks the
    environment's scripts (a virtual environment that was not activated), where a plain
    ``cubehub`` is "command not found".

    >>> command("info", "graz.zarr")[1:]
    ['-m', 'cubehub', 'info', 'graz.zarr']
    """
    return [sys.executable, "-m", "cubehub", *args]


def run_command(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``cubehub ARGS`` (see :func:`command`), print what it prints, and return it.

    Args:
        args: the command's arguments, e.g. ``"plan", "graz-2022.yaml"``.
        check: raise the error class of the command's exit code (e.g. :class:`InputError`
            for 2) with its last line of output if it fails; default True.

    Example:
        >>> run_command("info", "graz-2022.zarr")  # doctest: +SKIP
    """
    done = subprocess.run(command(*args), capture_output=True, text=True, check=False)
    for stream, text in ((sys.stdout, done.stdout), (sys.stderr, done.stderr)):
        if text:
            stream.write(text)
            stream.flush()
    if check and done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        error = _ERRORS.get(done.returncode, CubehubError)
        raise error(f"cubehub {' '.join(args)} exited with {done.returncode}: {last}")
    return done


#: Exit code of the command -> the error it stands for.
_ERRORS: dict[int, type[CubehubError]] = {
    int(ExitCode.BAD_INPUT): InputError,
    int(ExitCode.DATA): DataError,
    int(ExitCode.CLUSTER): ClusterError,
    int(ExitCode.SERVER): ServerError,
}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext cubehub.notebook``: cubehub's own errors show as one line, without a traceback.

    Their message already says what was wrong and how to fix it; the traceback of an
    :class:`~cubehub.errors.CubehubError` only hides it. Any other exception keeps its full
    traceback, and ``%tb`` still shows the last one in full.
    """
    ipython.set_custom_exc((CubehubError,), _one_line)


def _one_line(
    shell: Any, etype: type[BaseException], value: BaseException, tb: Any, tb_offset: Any = None
) -> list[str]:
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # for %tb
    stb: list[str] = shell.InteractiveTB.get_exception_only(etype, value)
    shell._showtraceback(etype, value, stb)
    return stb
