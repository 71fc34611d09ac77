"""Split an output grid into tiles whose edges fall on chunk edges; pure.

A tile is the unit of work and of completion: each is computed by one bounded task graph
and written as an aligned Zarr region, so writers never share a chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

from cubehub.cube import OutputGrid
from cubehub.errors import InputError


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
            (xmin + self.x[0] * res, ymax - self.y[1] * res, xmin + self.x[1] * res, ymax - self.y[0] * res),
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
