"""One map tile of a layer as a PNG, through rio-tiler's xarray reader.

Pixels that are NaN (no clear observation, outside the grid, or in a tile not yet complete)
are transparent. At zoom levels coarser than the store, the layer is first thinned by a
whole step (nearest neighbour, as the tile would sample it anyway), so that a zoomed-out
tile reprojects at most a few times its own size, not the whole store at full resolution.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import xarray as xr
from morecantile import Tile, TileMatrixSet
from rasterio.warp import transform_bounds
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io.xarray import XarrayReader
from rio_tiler.utils import render

from cubehub.maps.style import Style
from cubehub.maps.tms import TILE_SIZE

__all__ = ["EMPTY_PNG", "render_tile"]

#: A fully transparent tile: what is drawn where there is nothing to draw.
EMPTY_PNG: bytes = render(
    np.zeros((1, TILE_SIZE, TILE_SIZE), dtype=np.uint8),
    mask=np.zeros((TILE_SIZE, TILE_SIZE), dtype=np.uint8),
    img_format="PNG",
)


def render_tile(
    layer: xr.DataArray, tms: TileMatrixSet, z: int, x: int, y: int, style: Style
) -> bytes:
    """Tile (z, x, y) of ``tms`` over ``layer`` (y, x, decoded, NaN missing), coloured by
    ``style``; :data:`EMPTY_PNG` when it holds no data."""
    source = _thinned(layer, tms, z, x, y)
    try:
        with XarrayReader(source, tms=tms) as reader:
            image = reader.tile(x, y, z, tilesize=TILE_SIZE, reproject_method="nearest")
    except TileOutsideBounds:
        return EMPTY_PNG
    if bool(np.all(image.array.mask)):
        return EMPTY_PNG
    image.rescale(in_range=((style.low, style.high),), out_range=((0, 255),))
    png: bytes = image.render(img_format="PNG", colormap=style.table())
    return png


def _thinned(layer: xr.DataArray, tms: TileMatrixSet, z: int, x: int, y: int) -> xr.DataArray:
    """Every ``step``-th pixel of ``layer`` when the tile's pixels, measured in the layer's
    CRS, are ``step`` or more of the layer's pixels wide (rounded down: never coarser than
    the tile samples)."""
    bounds = tms.xy_bounds(Tile(x=x, y=y, z=z))
    try:
        left, bottom, right, top = transform_bounds(tms.rasterio_crs, layer.rio.crs, *bounds)
    except Exception:  # a tile outside the layer CRS's area of use: no thinning
        return layer
    tile_resolution = min(right - left, top - bottom) / TILE_SIZE
    step = math.floor(tile_resolution / abs(float(layer.rio.resolution()[0])))
    if step < 2:
        return layer
    thin = layer.isel(y=slice(None, None, step), x=slice(None, None, step))
    return cast(xr.DataArray, thin.rio.write_transform(thin.rio.transform(recalc=True)))
