"""Which tiles of a store are complete, per season; pure (no I/O).

A store is written tile by tile. A tile of a season is *complete* once every one of its
chunks is written; only then is it recorded. A chunk missing from a Zarr array reads back
as the fill value, so without these records a half-written store would look valid.
:func:`completion_mask` turns the records into a lazy (season, y, x) boolean that readers
use to hide pixels of tiles not yet complete.

A tile written while some of its assets could not be read (``on_read_error: missing``:
those count as nodata) is recorded with the hrefs of those assets. Its pixels are shown,
but it does not count as complete: the next run of the job writes it again, every season.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from cubehub.grid import SPATIAL_DIMS
from cubehub.tiles import Tile

__all__ = ["Completion", "TileLayout", "completion_mask", "with_complete"]


@dataclass(frozen=True)
class TileLayout:
    """The tiles of a store: id -> (y0, y1, x0, x1) pixel index ranges (half-open)."""

    tiles: Mapping[str, tuple[int, int, int, int]]

    @classmethod
    def from_tiles(cls, tiles: Iterable[Tile]) -> TileLayout:
        return cls({t.id: (t.y[0], t.y[1], t.x[0], t.x[1]) for t in tiles})

    @classmethod
    def from_json(cls, data: Mapping[str, Sequence[int]]) -> TileLayout:
        return cls({k: (int(v[0]), int(v[1]), int(v[2]), int(v[3])) for k, v in data.items()})

    def to_json(self) -> dict[str, list[int]]:
        return {k: list(v) for k, v in sorted(self.tiles.items())}

    def as_tiles(self) -> list[Tile]:
        """The tiles, in id order (rows, then columns)."""
        return [Tile.from_id(k, (v[0], v[1]), (v[2], v[3])) for k, v in sorted(self.tiles.items())]

    def __len__(self) -> int:
        return len(self.tiles)


@dataclass
class Completion:
    """Tiles recorded per season label, and the assets each tile was written without."""

    done: dict[str, set[str]] = field(default_factory=dict)
    #: tile id -> hrefs of the assets that could not be read when it was last written.
    missing: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_paths(cls, paths: Iterable[str]) -> Completion:
        """From record object paths ``.../<season>/<tile>.json`` (as a store lists them)."""
        out = cls()
        for path in paths:
            parts = path.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-1].endswith(".json"):
                out.add(parts[-2], parts[-1].removesuffix(".json"))
        return out

    def add(self, season: str, tile: str) -> None:
        self.done.setdefault(season, set()).add(tile)

    def tiles_complete(self, seasons: Iterable[str], tiles: Iterable[str]) -> set[str]:
        """Those of ``tiles`` complete in every one of ``seasons`` (and none of whose
        assets was missing)."""
        remaining = set(tiles) - set(self.missing)
        for season in seasons:
            remaining &= self.done.get(season, set())
        return remaining

    def seasons_missing(self, tile: str, seasons: Iterable[str]) -> list[str]:
        """Those of ``seasons`` (in their order) in which ``tile`` is not complete: all of
        them for a tile written without some of its assets."""
        if tile in self.missing:
            return list(seasons)
        return [s for s in seasons if tile not in self.done.get(s, set())]

    def to_json(self) -> dict[str, list[str]]:
        """The season records, ``{season: [tile, ...]}``."""
        return {s: sorted(t) for s, t in sorted(self.done.items())}


def completion_mask(
    completion: Completion,
    layout: TileLayout,
    seasons: Sequence[str],
    shape: tuple[int, int],
    chunks: tuple[int, int],
) -> da.Array:
    """Lazy (season, y, x) boolean, True where the pixel's tile is complete in that season.

    Args:
        completion: the store's records.
        layout: the store's tiles; their edges fall on chunk edges.
        seasons: season labels in store order.
        shape: (rows, columns) of the grid.
        chunks: (rows, columns) of a chunk; the mask is chunked the same way, one season
            per chunk, so masking a variable adds one cheap task per chunk.
    """
    rows, cols = shape
    cy, cx = chunks
    n_by, n_bx = -(-rows // cy), -(-cols // cx)
    block_done = np.zeros((len(seasons), n_by, n_bx), dtype=bool)
    for k, season in enumerate(seasons):
        for tile in completion.done.get(season, set()):
            if tile in layout.tiles:
                y0, y1, x0, x1 = layout.tiles[tile]
                block_done[k, y0 // cy : -(-y1 // cy), x0 // cx : -(-x1 // cx)] = True

    # One element per chunk, expanded chunk by chunk: the graph holds the small per-chunk
    # table once, however large the grid.
    coarse = da.from_array(block_done, chunks=1)
    out_chunks = ((1,) * len(seasons), _split(rows, cy), _split(cols, cx))
    expanded: da.Array = coarse.map_blocks(
        _expand, chunks=out_chunks, dtype=bool, meta=np.array((), dtype=bool)
    )
    return expanded


def _expand(done: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
    assert block_info is not None
    return np.full(block_info[None]["chunk-shape"], bool(done.item()))


def _split(size: int, chunk: int) -> tuple[int, ...]:
    return tuple(min(chunk, size - start) for start in range(0, size, chunk))


def with_complete(
    ds: xr.Dataset, completion: Completion, layout: TileLayout, *, mask: bool
) -> xr.Dataset:
    """``ds`` with a ``complete`` (season, y, x) coordinate from the records; with ``mask``,
    pixels of tiles not recorded complete are NaN (a missing chunk reads as fill values)."""
    var = next(v for v in ds.data_vars.values() if set(SPATIAL_DIMS) <= set(v.dims))
    chunks = var.encoding.get("preferred_chunks", {})
    cy = chunks.get("y", ds.sizes["y"])
    cx = chunks.get("x", ds.sizes["x"])
    seasons = [str(s) for s in ds["season"].values]
    complete = completion_mask(
        completion, layout, seasons, (ds.sizes["y"], ds.sizes["x"]), (cy, cx)
    )
    ds = ds.assign_coords(
        complete=(
            ("season", "y", "x"),
            complete,
            {
                "long_name": "pixel's tile is completely written in this season",
            },
        )
    )
    if not mask:
        return ds
    out = ds.copy()
    for name, v in ds.data_vars.items():
        if {"season", *SPATIAL_DIMS} <= set(v.dims):
            out[name] = v.where(ds["complete"]).assign_attrs(v.attrs)
            out[name].encoding = v.encoding
    return out
