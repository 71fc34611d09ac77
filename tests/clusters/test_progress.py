"""Progress bars only where someone watches them: a terminal, or a notebook cell."""

from __future__ import annotations

import io
import time
from typing import Any

from distributed import Client
from rich.console import Console

from cubehub.clusters.progress import shown


def _slow(x: int) -> int:
    time.sleep(0.5)
    return x


def test_no_live_bar_into_a_pipe_even_when_colour_is_forced(local_client: Client) -> None:
    # A Jupyter kernel sets FORCE_COLOR=1 for its subprocesses: rich then draws a live bar
    # into whatever stderr is, a pipe in a notebook cell or a pod's log (43 kB of escapes).
    piped = io.StringIO()
    console = Console(file=piped, force_terminal=True, width=80)
    futures: list[Any] = local_client.map(_slow, range(4), pure=False)
    with shown(futures, "tiles 1-4 of 4", console=console):
        assert [f.result() for f in futures] == [0, 1, 2, 3]
    assert "\x1b[" not in piped.getvalue() and piped.getvalue() == ""
