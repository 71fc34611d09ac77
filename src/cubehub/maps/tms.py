"""The tile matrix sets a store is served in; pure (morecantile).

* ``WebMercatorQuad``: the OGC's Web Mercator quadtree (XYZ tiles of web maps);
* the store's native grid: a quadtree in the store's CRS whose finest level has exactly
  the store's pixels (same size, same corner), so its tiles are crops, never resampled.
  Its id is ``<EPSG code>-<resolution>m``, e.g. ``EPSG32633-10m``.
"""

from __future__ import annotations

import math

import morecantile
from morecantile import TileMatrixSet
from pyproj import CRS

__all__ = ["TILE_SIZE", "WEB_MERCATOR", "native_tms", "web_mercator"]

TILE_SIZE = 256
WEB_MERCATOR = "WebMercatorQuad"


def web_mercator() -> TileMatrixSet:
    tms: TileMatrixSet = morecantile.tms.get(WEB_MERCATOR)
    return tms


def native_tms(
    crs: CRS, resolution: float, top_left: tuple[float, float], shape: tuple[int, int]
) -> TileMatrixSet:
    """A quadtree on the store's grid: level ``maxzoom`` has the store's ``resolution``
    and its tile (0, 0) starts at the store's ``top_left`` corner; each level up halves it.

    Args:
        crs: the store's CRS.
        resolution: pixel size in CRS units.
        top_left: (x, y) of the grid's upper-left corner.
        shape: (rows, columns) of the grid.
    """
    rows, cols = shape
    maxzoom = max(0, math.ceil(math.log2(max(rows, cols) / TILE_SIZE)))
    side = TILE_SIZE * resolution * 2**maxzoom
    x0, y1 = top_left
    epsg = crs.to_epsg()
    name = f"EPSG{epsg}" if epsg else "native"
    tms: TileMatrixSet = TileMatrixSet.custom(
        [x0, y1 - side, x0 + side, y1],
        crs,
        tile_width=TILE_SIZE,
        tile_height=TILE_SIZE,
        minzoom=0,
        maxzoom=maxzoom,
        id=f"{name}-{resolution:g}m",
        title=f"{crs.name}, {resolution:g} m quadtree on the store's grid",
    )
    return tms
