"""Metadata-only Sentinel-2 L2A items at any scale, for graph and planning benchmarks.

The items look like Earth Search v1 ``sentinel-2-l2a`` items (asset keys, ``proj:code``,
``raster:bands``, processing baselines) over a row of adjacent 109.8 km MGRS-like tiles in
UTM 33N, a scene every 5 days per tile. Their hrefs point at a closed port: they are for
building cubes and plans, never for reading pixels (use :mod:`cubehub.testing.archive`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pyproj import Transformer

#: Edge of one tile in metres (10 980 pixels of 10 m), as a Sentinel-2 MGRS tile.
TILE_EDGE_M = 109_800.0
_ORIGIN_X, _ORIGIN_Y = 300_000.0, 5_300_040.0
_EPSG = 32633
_BANDS_10M = ("blue", "green", "red", "nir")
_BANDS_20M = ("swir16", "swir22")
_TO_LONLAT = Transformer.from_crs(_EPSG, 4326, always_xy=True)


def tile_bounds(tile: int) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) in EPSG:32633 of tile number ``tile`` (tiles run west to east)."""
    x0 = _ORIGIN_X + tile * TILE_EDGE_M
    return x0, _ORIGIN_Y - TILE_EDGE_M, x0 + TILE_EDGE_M, _ORIGIN_Y


def tile_bbox_lonlat(tile: int) -> tuple[float, float, float, float]:
    """The lon/lat box of tile number ``tile``."""
    xmin, ymin, xmax, ymax = tile_bounds(tile)
    lons, lats = _TO_LONLAT.transform([xmin, xmax, xmin, xmax], [ymin, ymin, ymax, ymax])
    return min(lons), min(lats), max(lons), max(lats)


def synthetic_items(n: int, *, tiles: int = 4, start: datetime = datetime(2021, 12, 2, 10, tzinfo=UTC)) -> list[dict[str, Any]]:
    """``n`` item dicts spread round-robin over ``tiles`` tiles, 5 days apart per tile.

    Dates from 2022-01-25 get processing baseline 04.00 and ``boa_offset_applied`` true,
    as on Earth Search.
    """
    items = []
    for k in range(n):
        tile = k % tiles
        when = start + timedelta(days=5 * (k // tiles), minutes=tile)
        items.append(_item(k, tile, when))
    return items


def _item(k: int, tile: int, when: datetime) -> dict[str, Any]:
    xmin, _, _, ymax = tile_bounds(tile)
    west, south, east, north = tile_bbox_lonlat(tile)
    modern = when >= datetime(2022, 1, 25, tzinfo=UTC)
    baseline = "04.00" if modern else "03.01"
    item_id = f"S2{'AB'[k % 2]}_33T{tile:02d}_{when:%Y%m%d}_0_L2A"

    def asset(key: str, resolution: float) -> dict[str, Any]:
        side = round(TILE_EDGE_M / resolution)
        band: dict[str, Any] = {"nodata": 0, "data_type": "uint16", "spatial_resolution": resolution}
        if key != "scl":
            band.update(scale=0.0001, offset=-0.1 if modern else 0.0)
        return {
            "href": f"http://127.0.0.1:9/{item_id}/{key}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "proj:shape": [side, side],
            "proj:transform": [resolution, 0.0, xmin, 0.0, -resolution, ymax],
            "raster:bands": [band],
        }

    assets = {b: asset(b, 10.0) for b in _BANDS_10M}
    assets |= {b: asset(b, 20.0) for b in (*_BANDS_20M, "scl")}
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": "sentinel-2-l2a",
        "bbox": [west, south, east, north],
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
        },
        "properties": {
            "datetime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "platform": f"sentinel-2{'ab'[k % 2]}",
            "constellation": "sentinel-2",
            "eo:cloud_cover": float((k * 37) % 100),
            "proj:code": f"EPSG:{_EPSG}",
            "grid:code": f"MGRS-33T{tile:02d}",
            "s2:processing_baseline": baseline,
            "s2:sequence": "0",
            "earthsearch:boa_offset_applied": modern,
        },
        "links": [],
        "assets": assets,
    }
