"""STAC records beside each output store, so shared composites are found like any data.

For a store at ``<url>`` cubehub writes ``<url>.stac/collection.json`` and
``<url>.stac/item.json``: a Collection and one Item with the datacube extension (every
dimension and variable, with units), the projection extension (CRS, shape, transform) and
one asset pointing at the store, with the ``xarray-assets`` keys that open it. Links
between the two are relative, so the pair can be copied or crawled as a static catalog.
No credential is ever written: storage options are checked and redacted first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pystac
import xarray as xr
from pyproj import CRS, Transformer
from pystac.extensions.datacube import DatacubeExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.xarray_assets import XarrayAssetsExtension

from cubehub import __version__
from cubehub.credentials import redact
from cubehub.output.storage import check_no_secrets, filesystem, protocol_of

__all__ = [
    "build_stac_records",
    "iso_day",
    "lonlat_footprint",
    "read_stac_item",
    "remove_stac_records",
    "stac_location",
    "write_stac_records",
]

MEDIA_TYPES = {
    "zarr": "application/vnd.zarr",
    "icechunk": "application/vnd.zarr+icechunk",
}
_EDGE_POINTS = 21  # points per grid edge when projecting the footprint to lon/lat


def stac_location(url: str) -> str:
    """The folder of a store's STAC records: ``<url>.stac``."""
    return url.rstrip("/") + ".stac"


def build_stac_records(
    ds: xr.Dataset,
    url: str,
    *,
    kind: Literal["zarr", "icechunk"] = "zarr",
    zarr_format: int = 3,
    storage_options: Mapping[str, Any] | None = None,
    tiles_complete: Mapping[str, int] | None = None,
    tiles_total: int | None = None,
) -> tuple[pystac.Collection, pystac.Item]:
    """A Collection and an Item describing the store at ``url``.

    Args:
        ds: the store's dataset (raw or decoded), with its ``spatial_ref``.
        url: where the store is; the asset's href.
        kind: ``"zarr"`` or ``"icechunk"`` (sets the asset's media type).
        zarr_format: 2 or 3, for the media type's ``version``.
        storage_options: non-secret fsspec options a reader needs (e.g. ``endpoint_url``).
        tiles_complete: complete tiles per season; tiles_total: tiles per season.
    """
    options = dict(storage_options or {})
    check_no_secrets(options)
    crs = CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"])
    x, y = ds["x"].values, ds["y"].values
    res = float(abs(x[1] - x[0])) if x.size > 1 else float(abs(y[1] - y[0]))
    bounds = (
        float(x.min()) - res / 2,
        float(y.min()) - res / 2,
        float(x.max()) + res / 2,
        float(y.max()) + res / 2,
    )
    footprint, bbox = lonlat_footprint(crs, bounds)
    start = iso_day(ds["season_start"].values.min())
    end = iso_day(ds["season_end"].values.max(), end_of_day=True)
    item_id = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zarr") or "composite"
    source = str(ds.attrs.get("stac_collection", ""))
    n_items = len(json.loads(ds.attrs.get("stac_item_ids", "[]")))
    dims = _dimensions(ds, crs, res, bounds)
    variables = _variables(ds)
    stac_url = stac_location(url)

    item = pystac.Item(
        id=item_id,
        geometry=footprint,
        bbox=bbox,
        datetime=None,
        properties={
            "start_datetime": start,
            "end_datetime": end,
            "title": str(ds.attrs.get("title", "cubehub composite")),
            "description": f"Seasonal percentile composite of {source or 'STAC'} items, made by cubehub.",
            "processing:software": {"cubehub": str(ds.attrs.get("cubehub_version", __version__))},
            "cubehub:source_collection": source,
            "cubehub:source_items": n_items,
            "cubehub:tiles_total": tiles_total,
            "cubehub:tiles_complete": dict(tiles_complete or {}),
        },
    )
    ProjectionExtension.ext(item, add_if_missing=True)
    item.properties.update(
        {
            "proj:code": f"EPSG:{crs.to_epsg()}" if crs.to_epsg() else None,
            "proj:wkt2": None if crs.to_epsg() else crs.to_wkt(),
            "proj:shape": [int(y.size), int(x.size)],
            "proj:transform": [res, 0.0, bounds[0], 0.0, -res, bounds[3]],
            "proj:bbox": list(bounds),
        }
    )
    DatacubeExtension.ext(item, add_if_missing=True)
    item.properties.update({"cube:dimensions": dims, "cube:variables": variables})
    asset = pystac.Asset(
        href=url,
        media_type=MEDIA_TYPES[kind] + (f"; version={zarr_format}" if kind == "zarr" else ""),
        roles=["data"],
        title="Zarr store" if kind == "zarr" else "Icechunk repository (branch main)",
    )
    item.add_asset("data", asset)
    XarrayAssetsExtension.ext(item, add_if_missing=True)
    asset.extra_fields["xarray:open_kwargs"] = (
        {"engine": "zarr", "consolidated": True, "decode_coords": "all"}
        if kind == "zarr"
        else {"engine": "zarr", "consolidated": False, "decode_coords": "all"}
    )
    if options:
        asset.extra_fields["xarray:storage_options"] = redact(options)
    item.set_self_href(f"{stac_url}/item.json")

    collection = pystac.Collection(
        id=f"cubehub-{item_id}",
        title=f"cubehub composite {item_id}",
        description=(
            f"Seasonal percentile composites ({', '.join(variables)}) of {source or 'STAC'} items, "
            f"stored as {'an Icechunk repository' if kind == 'icechunk' else f'Zarr format {zarr_format}'} at {url}."
        ),
        extent=pystac.Extent(
            pystac.SpatialExtent([bbox]),
            pystac.TemporalExtent(
                [[pystac.utils.str_to_datetime(start), pystac.utils.str_to_datetime(end)]]
            ),
        ),
        license="other",
    )
    DatacubeExtension.ext(collection, add_if_missing=True)
    collection.extra_fields.update({"cube:dimensions": dims, "cube:variables": variables})
    collection.set_self_href(f"{stac_url}/collection.json")
    return collection, item


def write_stac_records(
    url: str,
    ds: xr.Dataset,
    *,
    storage_options: Mapping[str, Any] | None = None,
    kind: Literal["zarr", "icechunk"] = "zarr",
    zarr_format: int = 3,
    tiles_complete: Mapping[str, int] | None = None,
    tiles_total: int | None = None,
) -> str:
    """Write the Collection and Item of the store at ``url`` beside it; returns the folder."""
    collection, item = build_stac_records(
        ds,
        url,
        kind=kind,
        zarr_format=zarr_format,
        storage_options=storage_options,
        tiles_complete=tiles_complete,
        tiles_total=tiles_total,
    )
    folder = stac_location(url)
    fs, path = filesystem(folder, storage_options)
    collection_dict = collection.to_dict(include_self_link=True, transform_hrefs=False)
    collection_dict["links"] += [
        {"rel": "item", "href": "./item.json", "type": "application/geo+json"},
        {"rel": "root", "href": "./collection.json", "type": "application/json"},
    ]
    item_dict = item.to_dict(include_self_link=True, transform_hrefs=False)
    item_dict["collection"] = collection.id
    item_dict["links"] += [
        {"rel": "collection", "href": "./collection.json", "type": "application/json"},
        {"rel": "parent", "href": "./collection.json", "type": "application/json"},
        {"rel": "root", "href": "./collection.json", "type": "application/json"},
    ]
    if protocol_of(folder) == "file":
        fs.makedirs(path, exist_ok=True)
    fs.pipe_file(f"{path}/collection.json", json.dumps(collection_dict, indent=1).encode())
    fs.pipe_file(f"{path}/item.json", json.dumps(item_dict, indent=1).encode())
    return folder


def read_stac_item(
    url: str, storage_options: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The Item written beside the store at ``url``, or None."""
    fs, path = filesystem(stac_location(url), storage_options)
    try:
        item: dict[str, Any] = json.loads(fs.cat_file(f"{path}/item.json"))
    except FileNotFoundError:
        return None
    return item


def remove_stac_records(url: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Delete the STAC records of the store at ``url``, if any (before it is replaced)."""
    fs, path = filesystem(stac_location(url), storage_options)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def lonlat_footprint(
    crs: CRS, bounds: tuple[float, float, float, float]
) -> tuple[dict[str, Any], list[float]]:
    """The GeoJSON polygon (lon/lat) and bbox of ``bounds`` (xmin, ymin, xmax, ymax in
    ``crs``), each edge projected through :data:`_EDGE_POINTS` points."""
    xmin, ymin, xmax, ymax = bounds
    t = np.linspace(0.0, 1.0, _EDGE_POINTS)
    xs = np.concatenate(
        [
            xmin + (xmax - xmin) * t,
            np.full_like(t, xmax),
            xmax - (xmax - xmin) * t,
            np.full_like(t, xmin),
        ]
    )
    ys = np.concatenate(
        [
            np.full_like(t, ymin),
            ymin + (ymax - ymin) * t,
            np.full_like(t, ymax),
            ymax - (ymax - ymin) * t,
        ]
    )
    lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(xs, ys)
    ring = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat, strict=True)]
    ring.append(ring[0])
    bbox = [float(np.min(lon)), float(np.min(lat)), float(np.max(lon)), float(np.max(lat))]
    return {"type": "Polygon", "coordinates": [ring]}, bbox


def iso_day(value: np.datetime64, *, end_of_day: bool = False) -> str:
    """A day as a STAC datetime: its first second, or with ``end_of_day`` its last."""
    day = np.datetime_as_string(np.asarray(value).astype("datetime64[D]"))
    return f"{day}T23:59:59Z" if end_of_day else f"{day}T00:00:00Z"


def _dimensions(
    ds: xr.Dataset, crs: CRS, res: float, bounds: tuple[float, float, float, float]
) -> dict[str, Any]:
    epsg = crs.to_epsg()
    ref: Any = epsg if epsg else crs.to_wkt()
    starts = [np.datetime_as_string(v, unit="D") for v in ds["season_start"].values]
    ends = [np.datetime_as_string(v, unit="D") for v in ds["season_end"].values]
    return {
        "x": {
            "type": "spatial",
            "axis": "x",
            "extent": [bounds[0], bounds[2]],
            "step": res,
            "reference_system": ref,
        },
        "y": {
            "type": "spatial",
            "axis": "y",
            "extent": [bounds[1], bounds[3]],
            "step": -res,
            "reference_system": ref,
        },
        "season": {
            "type": "season",
            "values": [str(s) for s in ds["season"].values],
            "description": "season windows, first and last day inclusive: "
            + ", ".join(f"{s}..{e}" for s, e in zip(starts, ends, strict=True)),
        },
        "percentile": {
            "type": "percentile",
            "values": [float(q) for q in ds["percentile"].values],
            "unit": "percent",
            "description": "percentile of the clear observations in the season",
        },
    }


def _variables(ds: xr.Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, var in ds.data_vars.items():
        entry: dict[str, Any] = {
            "dimensions": [str(d) for d in var.dims],
            "type": "data",
            "description": str(var.attrs.get("long_name", name)),
            "unit": str(var.attrs.get("units", "1")),
        }
        out[str(name)] = entry
    for name in ("season_start", "season_end"):
        out[name] = {
            "dimensions": ["season"],
            "type": "auxiliary",
            "description": str(ds[name].attrs.get("long_name", name)),
        }
    return out
