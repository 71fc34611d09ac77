"""Progress of Dask work: a rich bar in terminals, Dask's widget in notebooks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from distributed import Future
from distributed.diagnostics.progressbar import TextProgressBar
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

log = logging.getLogger(__name__)
#: Seconds to wait for a bar to draw its last state after the work ended.
_BAR_JOIN_S = 2.0


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

    def __init__(self, futures: Sequence[Future[Any]], progress: Progress, task: Any) -> None:
        self._progress = progress
        self._task = task
        # Called by name: mypy then knows the untyped __init__ is distributed's.
        TextProgressBar.__init__(self, futures, interval="200ms")

    def _draw_bar(self, remaining: int, all: int, **kwargs: Any) -> None:
        self._progress.update(self._task, total=all, completed=all - remaining)

    def _draw_stop(self, **kwargs: Any) -> None:
        pass


@contextmanager
def shown(
    futures: Sequence[Future[Any]],
    description: str,
    *,
    show: bool = True,
    console: Console | None = None,
) -> Iterator[None]:
    """Show the task progress of ``futures`` while the block waits for them (and handles
    each as it finishes); errors surface on ``.result()`` in the block.

    The bar runs beside the block (a thread for the terminal's bar, Dask's widget in
    notebooks); a bar that loses its scheduler ends quietly, the block reports why.
    """
    if not show:
        yield
        return
    if in_notebook() and have_widgets():
        display_widget(futures)  # the widget updates by itself
        yield
        return
    if in_notebook():
        from distributed import progress

        # Dask's text bar streams live into a notebook, and blocks: beside the block.
        with _beside(lambda: progress(*futures, notebook=False)):
            yield
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tasks"),
        TimeElapsedColumn(),
    )
    console = console or Console(stderr=True)
    if not _is_a_terminal(console):
        # A pipe or a log (a batch pod, a notebook's subprocess): a live bar there is only
        # escape codes, even when FORCE_COLOR (set by Jupyter kernels) forces colour.
        yield
        return
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=None)
        with _beside(lambda: _RichTaskBar(futures, bar, task)):
            yield


def display_widget(futures: Sequence[Future[Any]]) -> None:
    """Show Dask's progress widget of ``futures`` in this notebook cell, now.

    ``distributed.progress(notebook=True)`` only returns the widget: one that is not a
    cell's last expression would never be shown.
    """
    from distributed import progress
    from IPython.display import display

    show = cast(Callable[[object], None], display)  # IPython's display has no type hints
    show(progress(*futures, notebook=True))


def _is_a_terminal(console: Console) -> bool:
    isatty = getattr(console.file, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def _beside(draw: Callable[[], object]) -> Iterator[None]:
    """Run ``draw`` (which blocks until the work ends) in a daemon thread during the block."""

    def quietly() -> None:
        try:
            draw()
        except Exception as exc:  # the scheduler went away: the block's .result() says so
            log.debug("progress bar stopped: %r", exc)

    thread = threading.Thread(target=quietly, name="cubehub-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=_BAR_JOIN_S)
