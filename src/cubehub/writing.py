"""Drive a tile store on a cluster: tiles in submissions within a task budget, each tile
recorded complete as soon as all its chunks are written.

Shared by every job that writes a store tile by tile (:meth:`cubehub.pipeline.PreparedJob.run`,
:func:`cubehub.fill_job.fill_store`), so all of them batch, report progress, record, fail
and resume the same way: a tile whose write the storage refuses (unreachable endpoint, no
credentials on the workers, disk full) raises an :class:`~cubehub.errors.OutputLocationError`
naming the tile and the store, the rest of its submission is cancelled, and every tile
recorded before stays recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import xarray as xr
from distributed import Client, as_completed

from cubehub.clusters import progress
from cubehub.errors import InputError, OutputLocationError
from cubehub.output.layout import TileStore
from cubehub.output.storage import explain_failure, is_storage_failure
from cubehub.tiles import Tile, pack_tiles

__all__ = ["TASK_BUDGET", "check_budget", "write_tiles"]

#: Default largest number of tasks in one submission to the scheduler.
TASK_BUDGET = 100_000
log = logging.getLogger(__name__)


def check_budget(tile_ds: xr.Dataset, tile: Tile, task_budget: int) -> int:
    """The number of tasks of one tile's graph; refuses a tile above the budget."""
    tasks = len(tile_ds.__dask_graph__())
    if tasks > task_budget:
        raise InputError(
            f"tile {tile.id} needs {tasks} tasks, above the task budget of {task_budget}; "
            "lower tile_size or raise the budget"
        )
    return tasks


def write_tiles(
    store: TileStore,
    tiles: Iterable[tuple[Tile, xr.Dataset | None]],
    total: int,
    client: Client,
    *,
    task_budget: int = TASK_BUDGET,
    show_progress: bool = True,
    missing: Callable[[Tile], list[str]] | None = None,
) -> list[str]:
    """Write each ``(tile, dataset)`` into ``store``; returns the ids recorded complete.

    Args:
        store: the store (its :meth:`~cubehub.output.layout.TileStore.finish` is the
            caller's).
        tiles: each tile with its lazy dataset, or None for a tile to record complete
            without writing (one over no data); an iterator builds each graph only when
            its submission is due.
        total: how many tiles ``tiles`` holds, for the progress label.
        client: a client of the cluster to compute on.
        task_budget: most tasks in one submission (default :data:`TASK_BUDGET`).
        show_progress: show a progress bar (a widget in notebooks).
        missing: called once a tile is written: the assets it was written without, recorded
            with it (see :meth:`~cubehub.output.layout.TileStore.mark_complete`).

    Raises:
        OutputLocationError: the storage refused a tile's write (naming the tile).
        InputError: a tile's graph is above the task budget.
    """
    written: list[str] = []

    def graphs() -> Iterator[tuple[tuple[Tile, xr.Dataset], int]]:
        for tile, ds in tiles:
            if ds is None:
                store.mark_complete(tile)
                written.append(tile.id)
                continue
            yield (tile, ds), check_budget(ds, tile, task_budget)

    # The batching rule `cubehub plan` reports: consecutive tiles within the task budget.
    for batch in pack_tiles(graphs(), task_budget):
        tile_of = {client.compute(store.write_tile(ds, tile)): tile for tile, ds in batch}
        described = f"tiles {len(written) + 1}-{len(written) + len(batch)} of {total}"
        with progress.shown(list(tile_of), described, show=show_progress):
            for future in as_completed(tile_of):
                tile = tile_of[future]
                try:
                    result = future.result()
                except Exception as exc:
                    client.cancel(list(tile_of))  # the rest of the submission
                    failure = _tile_failure(exc, tile, store.url, client)
                    if failure is exc:
                        raise
                    raise failure from exc
                # Recorded now, not at the end of the submission: a kill keeps it.
                store.mark_complete(tile, result, missing(tile) if missing else ())
                written.append(tile.id)
                log.info("tile %s complete (%d of %d)", tile.id, len(written), total)
    return written


def _tile_failure(exc: Exception, tile: Tile, url: str, client: Client) -> Exception:
    """What to raise for the failed computation of ``tile``: storage failures (named on the
    worker by the store, or recognised here) as one :class:`OutputLocationError` naming the
    tile; anything else (read errors, a lost cluster, bugs) as it is."""
    if isinstance(exc, OutputLocationError):
        failure = exc
    elif is_storage_failure(exc) and client.status == "running":
        failure = explain_failure(exc, url, "cannot write to ")
    else:
        return exc
    return OutputLocationError(
        f"tile {tile.id} not written: {failure}; tiles recorded complete are kept, and a "
        "rerun resumes"
    )
