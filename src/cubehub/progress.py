"""Progress of Dask work: a rich bar in terminals, Dask's widget in notebooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from distributed import Future
from distributed.diagnostics.progressbar import TextProgressBar
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def in_notebook() -> bool:
    """True inside a Jupyter kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


def have_widgets() -> bool:
    """True when ipywidgets is installed (Dask's notebook progress bar needs it)."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class _RichTaskBar(TextProgressBar):
    """distributed's scheduler-fed progress, drawn as a rich bar (blocks until done)."""

    def __init__(self, futures: Sequence[Future], progress: Progress, task: Any) -> None:
        self._progress = progress
        self._task = task
        super().__init__(futures, interval="200ms")

    def _draw_bar(self, remaining: int, all: int, **kwargs: Any) -> None:
        self._progress.update(self._task, total=all, completed=all - remaining)

    def _draw_stop(self, **kwargs: Any) -> None:
        pass


def wait(futures: Sequence[Future], description: str, *, show: bool = True, console: Console | None = None) -> None:
    """Block until ``futures`` finish, showing task progress; errors surface on ``.result()``."""
    if not show:
        return
    if in_notebook():
        from distributed import progress

        # The widget when ipywidgets is there, else Dask's text bar, which streams live too.
        progress(*futures, notebook=have_widgets())
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tasks"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console or Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=None)
        _RichTaskBar(futures, bar, task)
