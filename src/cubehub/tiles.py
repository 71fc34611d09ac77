"""Split an output grid into tiles whose edges fall on chunk edges; pure.

A tile is the unit of work and of completion: each is computed by one bounded task graph
and written as an aligned Zarr region, so writers never share a chunk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from cubehub.errors import InputError
from cubehub.grid import OutputGrid

T = TypeVar("T")
_TILE_ID = re.compile(r"r(\d{4,})c(\d{4,})")


@dataclass(frozen=True)
class Tile:
    """A rectangle of output pixels: rows ``y`` and columns ``x`` (half-open index ranges)."""

    row: int
    col: int
    y: tuple[int, int]
    x: tuple[int, int]

    @property
    def id(self) -> str:
        """Stable name, e.g. ``r0002c0010``."""
        return f"r{self.row:04d}c{self.col:04d}"

    @classmethod
    def from_id(cls, tile_id: str, y: tuple[int, int], x: tuple[int, int]) -> Tile:
        """The tile named ``tile_id`` (as :attr:`id` writes it) covering rows ``y``, columns ``x``."""
        match = _TILE_ID.fullmatch(tile_id)
        if match is None:
            raise InputError(f"{tile_id!r} is not a tile id such as 'r0002c0010'")
        return cls(int(match[1]), int(match[2]), y, x)

    @property
    def shape(self) -> tuple[int, int]:
        return self.y[1] - self.y[0], self.x[1] - self.x[0]

    def grid(self, parent: OutputGrid) -> OutputGrid:
        """The tile's own grid (same CRS and resolution) inside ``parent``."""
        xmin, _, _, ymax = parent.bounds
        res = parent.resolution
        return OutputGrid(
            parent.epsg,
            res,
            (
                xmin + self.x[0] * res,
                ymax - self.y[1] * res,
                xmin + self.x[1] * res,
                ymax - self.y[0] * res,
            ),
        )


def split_grid(grid: OutputGrid, tile_size: int, chunk_size: int) -> list[Tile]:
    """Tiles of ``tile_size`` pixels (the last row/column smaller) covering ``grid``.

    Args:
        grid: the whole output grid.
        tile_size: tile edge in pixels; must be a multiple of ``chunk_size`` so that every
            tile writes whole Zarr chunks.
        chunk_size: Zarr chunk edge in pixels.
    """
    if chunk_size < 1 or tile_size < chunk_size or tile_size % chunk_size:
        raise InputError(
            f"tile size ({tile_size} px) must be a positive multiple of the chunk size ({chunk_size} px)"
        )
    rows, cols = grid.shape
    return [
        Tile(r, c, (y0, min(y0 + tile_size, rows)), (x0, min(x0 + tile_size, cols)))
        for r, y0 in enumerate(range(0, rows, tile_size))
        for c, x0 in enumerate(range(0, cols, tile_size))
    ]


def pack_tiles(work: Iterable[tuple[T, int]], task_budget: int) -> Iterator[list[T]]:
    """Consecutive runs of ``(thing, task count)`` whose summed task counts stay within
    ``task_budget``: the submissions of :func:`cubehub.pipeline.run_job`.

    Greedy, in order, and lazy, so a caller builds the next tile's graph only when the run
    before it is handed out: a run is closed when the next tile would take it over the
    budget. A tile that alone exceeds the budget forms a run of its own (and is over budget).

    >>> [run for run in pack_tiles(zip("abcde", [40, 40, 40, 90, 10]), 100)]
    [['a', 'b'], ['c'], ['d', 'e']]
    """
    run: list[T] = []
    total = 0
    for thing, tasks in work:
        if run and total + tasks > task_budget:
            yield run
            run, total = [], 0
        run.append(thing)
        total += tasks
    if run:
        yield run
