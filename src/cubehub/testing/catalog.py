"""Metadata-only Sentinel-2 L2A and Landsat C2 L2 items at any scale, for graph and
planning benchmarks and tests.

* :func:`synthetic_items`: Earth Search v1 ``sentinel-2-l2a`` items (asset keys,
  ``proj:code``, ``raster:bands``, processing baselines) over a row of adjacent 109.8 km
  MGRS-like tiles in UTM 33N, a scene every 5 days per tile.
* :func:`landsat_items`: Earth Search v1 ``landsat-c2-l2`` items of Landsat 5, 7, 8 and 9
  over WRS-2-like scenes in UTM 32N, each platform every 16 days within its years of
  operation (:data:`LANDSAT_PLATFORMS`), 8 days apart from its partner.

Their hrefs point at a closed port: they are for building cubes and plans, never for
reading pixels (use :mod:`cubehub.demo.archive`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

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


def box_item(
    item_id: str,
    collection: str,
    bbox: tuple[float, float, float, float] | list[float],
    properties: dict[str, Any],
    assets: dict[str, Any],
) -> dict[str, Any]:
    """A STAC 1.0 item dict whose footprint is its lon/lat ``bbox`` (west, south, east,
    north, degrees), without links: the frame every synthetic item here is built on."""
    west, south, east, north = bbox
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": collection,
        "bbox": [west, south, east, north],
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": properties,
        "links": [],
        "assets": assets,
    }


def synthetic_items(
    n: int, *, tiles: int = 4, start: datetime = datetime(2021, 12, 2, 10, tzinfo=UTC)
) -> list[dict[str, Any]]:
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
        band: dict[str, Any] = {
            "nodata": 0,
            "data_type": "uint16",
            "spatial_resolution": resolution,
        }
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
    properties = {
        "datetime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "platform": f"sentinel-2{'ab'[k % 2]}",
        "constellation": "sentinel-2",
        "eo:cloud_cover": float((k * 37) % 100),
        "proj:code": f"EPSG:{_EPSG}",
        "grid:code": f"MGRS-33T{tile:02d}",
        "s2:processing_baseline": baseline,
        "s2:sequence": "0",
        "earthsearch:boa_offset_applied": modern,
    }
    return box_item(item_id, "sentinel-2-l2a", (west, south, east, north), properties, assets)


# --- Landsat Collection 2 Level-2 --------------------------------------------------------


class LandsatPlatform(NamedTuple):
    """One Landsat platform as :func:`landsat_items` simulates it."""

    prefix: str
    """Scene id prefix: ``LT05``, ``LE07``, ``LC08``, ``LC09``."""
    instruments: tuple[str, ...]
    first: date
    """First day of simulated acquisitions (about the start of routine L2 data)."""
    last: date
    """Last day of simulated acquisitions."""
    phase_days: int
    """Day of the 16-day cycle it images a path on (partners are 8 days apart)."""


#: The platforms of Collection 2 Level-2 surface reflectance, by STAC ``platform``, with
#: their years of routine acquisitions, rounded: TM until November 2011, ETM+ until its
#: orbit drifted (2022), OLI from April 2013, OLI-2 from November 2021.
LANDSAT_PLATFORMS: dict[str, LandsatPlatform] = {
    "landsat-5": LandsatPlatform("LT05", ("tm",), date(1984, 4, 1), date(2011, 11, 18), 8),
    "landsat-7": LandsatPlatform("LE07", ("etm+",), date(1999, 7, 1), date(2022, 4, 6), 0),
    "landsat-8": LandsatPlatform("LC08", ("oli", "tirs"), date(2013, 4, 11), date(2100, 1, 1), 8),
    "landsat-9": LandsatPlatform("LC09", ("oli", "tirs"), date(2021, 10, 31), date(2100, 1, 1), 0),
}

#: Edge of one WRS-2-like scene footprint in metres (about 185 km across, 180 km along track).
LANDSAT_SCENE_M = (185_000.0, 180_000.0)
#: Spacing of adjacent paths (west to east: path numbers fall) and rows, metres: about
#: WRS-2's at 50 degrees north, so scenes overlap their neighbours as real ones do.
LANDSAT_STEP_M = (115_000.0, 161_000.0)
#: The scene whose upper-left corner is :data:`LANDSAT_ORIGIN` (EPSG:32632).
LANDSAT_REFERENCE = (196, 25)
LANDSAT_ORIGIN = (300_000.0, 6_000_000.0)
_LS_EPSG = 32632
_LS_TO_LONLAT = Transformer.from_crs(_LS_EPSG, 4326, always_xy=True)
_LS_REFLECTANCE = ("blue", "green", "red", "nir08", "swir16", "swir22")


def landsat_scene_bounds(path: int, row: int) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) in EPSG:32632 of WRS-2-like scene ``path``/``row``."""
    ref_path, ref_row = LANDSAT_REFERENCE
    x0 = LANDSAT_ORIGIN[0] + (ref_path - path) * LANDSAT_STEP_M[0]
    y1 = LANDSAT_ORIGIN[1] - (row - ref_row) * LANDSAT_STEP_M[1]
    return x0, y1 - LANDSAT_SCENE_M[1], x0 + LANDSAT_SCENE_M[0], y1


def landsat_scene_lonlat(path: int, row: int) -> tuple[float, float, float, float]:
    """The lon/lat box of scene ``path``/``row``."""
    xmin, ymin, xmax, ymax = landsat_scene_bounds(path, row)
    lons, lats = _LS_TO_LONLAT.transform([xmin, xmax, xmin, xmax], [ymin, ymin, ymax, ymax])
    return min(lons), min(lats), max(lons), max(lats)


def landsat_items(
    start: date,
    end: date,
    *,
    paths: Iterable[int] = (196,),
    rows: Iterable[int] = (25,),
    platforms: Iterable[str] = tuple(LANDSAT_PLATFORMS),
) -> list[dict[str, Any]]:
    """Item dicts of every scene ``paths`` x ``rows`` acquired from ``start`` to ``end``
    (inclusive) by each of ``platforms`` in operation then, in time order.

    A platform images a path every 16 days, on day ``(phase_days + 7 * path) % 16`` of the
    cycle counted from 2000-01-01 (adjacent WRS-2 paths are 7 days apart); rows of one pass
    are 24 s apart. About 23 items a year per scene and platform.
    """
    paths, rows = list(paths), list(rows)
    cycle0 = date(2000, 1, 1)
    items = []
    for name in platforms:
        spec = LANDSAT_PLATFORMS[name]
        first, last = max(start, spec.first), min(end, spec.last)
        for path in paths:
            phase = (spec.phase_days + 7 * path) % 16
            day = cycle0 + timedelta(days=phase + 16 * ((first - cycle0).days // 16))
            while day <= last:
                if day >= first:
                    for row in rows:
                        when = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
                        items.append(
                            _landsat_item(name, path, row, when + timedelta(seconds=24 * row))
                        )
                day += timedelta(days=16)
    return sorted(items, key=lambda i: (i["properties"]["datetime"], i["id"]))


def _landsat_item(platform: str, path: int, row: int, when: datetime) -> dict[str, Any]:
    spec = LANDSAT_PLATFORMS[platform]
    xmin, ymin, xmax, ymax = landsat_scene_bounds(path, row)
    west, south, east, north = landsat_scene_lonlat(path, row)
    item_id = f"{spec.prefix}_L2SP_{path:03d}{row:03d}_{when:%Y%m%d}_02_T1"
    shape = [round((ymax - ymin) / 30), round((xmax - xmin) / 30)]

    def asset(key: str, raster: dict[str, Any], roles: list[str]) -> dict[str, Any]:
        return {
            "href": f"http://127.0.0.1:9/{item_id}/{item_id}_{key.upper()}.TIF",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "raster:bands": [{"data_type": "uint16", "spatial_resolution": 30, **raster}],
            "roles": roles,
        }

    reflectance = {"nodata": 0, "scale": 2.75e-05, "offset": -0.2}
    bands = (("coastal",) if spec.prefix.startswith("LC") else ()) + _LS_REFLECTANCE
    assets = {b: asset(b, reflectance, ["data", "reflectance"]) for b in bands}
    assets["lwir11"] = asset(
        "lwir11",
        {"nodata": 0, "scale": 0.00341802, "offset": 149.0, "unit": "kelvin"},
        ["data", "temperature"],
    )
    assets["qa_pixel"] = asset("qa_pixel", {"nodata": 1, "unit": "bit index"}, ["cloud"])
    cloud = float((path * 31 + row * 17 + when.toordinal() * 7) % 100)
    properties = {
        "datetime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "platform": platform,
        "instruments": list(spec.instruments),
        "eo:cloud_cover": cloud,
        "proj:epsg": _LS_EPSG,
        "proj:shape": shape,
        "proj:transform": [30.0, 0.0, xmin, 0.0, -30.0, ymax],
        "landsat:wrs_type": "2",
        "landsat:wrs_path": f"{path:03d}",
        "landsat:wrs_row": f"{row:03d}",
        "landsat:collection_category": "T1",
        "landsat:collection_number": "02",
        "landsat:correction": "L2SP",
        "grid:code": f"WRS2-{path:03d}{row:03d}",
        "earthsearch:payload_id": f"usgs-landsat-c2l2/workflow-landsat-to-stac/{item_id}",
    }
    return box_item(item_id, "landsat-c2-l2", (west, south, east, north), properties, assets)
