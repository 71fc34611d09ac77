"""The STAC Collection of an export: one Item per season, one asset per COG.

One Item per season rather than per layer: a STAC Item is a footprint and a time span, and
every layer of a season shares both, so a search by date returns the season with all its
bands, percentiles, indices and counts (84 band layers of an ODSE year are 4 Items of 21
band assets, not 84 Items that differ only in properties a search does not filter by).

Each asset's key is its COG's file name without ``.tif``; its ``href`` is relative
(``../<file>.tif``), so the folder can be copied or served as it is. Assets carry the
projection extension (``proj:code``, ``proj:shape``, ``proj:transform``, ``proj:bbox``, on
the Item), the raster extension (``raster:bands``: data type, nodata, scale, offset, unit,
spatial resolution), roles ``["data", <kind>]`` (reflectance, temperature, index, count,
fill_source) and ``cubehub:variable`` / ``cubehub:percentile``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pystac
from pyproj import CRS
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension

from cubehub import __version__
from cubehub.output.export_plan import STAC_FILE, ExportLayer, ExportPlan
from cubehub.output.stac_records import iso_day, lonlat_footprint

__all__ = ["build_export_collection", "write_export_collection"]


def build_export_collection(plan: ExportPlan) -> pystac.Collection:
    """The Collection of ``plan``'s COGs, its Items, hrefs laid out in ``plan.folder``."""
    crs = CRS.from_wkt(plan.crs_wkt)
    rows, cols = plan.shape
    t = plan.transform
    bounds = (t.c, t.f + t.e * rows, t.c + t.a * cols, t.f)
    geometry, bbox = lonlat_footprint(crs, bounds)
    source = str(plan.attrs.get("stac_collection", "")) or "STAC"
    seasons: dict[str, list[ExportLayer]] = {}
    for layer in plan.layers:
        seasons.setdefault(layer.season, []).append(layer)
    fields = plan.fields
    collection = pystac.Collection(
        id=f"{fields.area}_{fields.product}_{fields.version}",
        title=f"{fields.area} {fields.product} {fields.version}: seasonal percentile composites",
        description=(
            f"Seasonal percentile composites of {source} items as Cloud Optimized GeoTIFFs, one "
            f"per variable x percentile x season ({len(plan.layers)} files), exported by cubehub "
            f"from {plan.url}; file names follow ODSE's fields (see cubehub.output.cog_names)."
        ),
        extent=pystac.Extent(
            pystac.SpatialExtent([bbox]),
            pystac.TemporalExtent(
                [
                    [
                        pystac.utils.str_to_datetime(iso_day(np.datetime64(plan.layers[0].start))),
                        pystac.utils.str_to_datetime(
                            iso_day(
                                np.datetime64(max(layer.end for layer in plan.layers)),
                                end_of_day=True,
                            )
                        ),
                    ]
                ]
            ),
        ),
        license="other",
        extra_fields={"cubehub:source_store": plan.url, "cubehub:source_collection": source},
    )
    for season, layers in seasons.items():
        collection.add_item(_item(plan, season, layers, geometry, bbox, bounds, crs))
    collection.normalize_hrefs(str(plan.folder))
    for item in collection.get_items():
        for asset in item.assets.values():
            asset.href = f"../{Path(asset.href).name}"
    return collection


def _item(
    plan: ExportPlan,
    season: str,
    layers: list[ExportLayer],
    geometry: dict[str, Any],
    bbox: list[float],
    bounds: tuple[float, float, float, float],
    crs: CRS,
) -> pystac.Item:
    first = layers[0]
    item = pystac.Item(
        id=plan.item_id(season),
        geometry=geometry,
        bbox=bbox,
        datetime=None,
        properties={
            "start_datetime": iso_day(np.datetime64(first.start)),
            "end_datetime": iso_day(np.datetime64(first.end), end_of_day=True),
            "title": f"{season} ({first.start} .. {first.end})",
            "cubehub:season": season,
            "cubehub:tiles_incomplete": list(plan.incomplete.get(season, [])),
            "processing:software": {"cubehub": str(plan.attrs.get("cubehub_version", __version__))},
        },
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = crs.to_epsg()
    proj.code = f"EPSG:{epsg}"
    proj.shape = list(plan.shape)
    t = plan.transform
    proj.transform = [t.a, t.b, t.c, t.d, t.e, t.f]
    proj.bbox = list(bounds)
    RasterExtension.add_to(item)
    for layer in layers:
        key = layer.file_name.removesuffix(".tif")
        asset = pystac.Asset(
            href=str(plan.folder / layer.file_name),
            media_type=pystac.MediaType.COG,
            title=_title(layer),
            roles=["data", layer.kind],
            extra_fields={
                "cubehub:variable": layer.variable,
                "cubehub:percentile": layer.percentile,
            },
        )
        item.add_asset(key, asset)
        RasterExtension.ext(asset).apply(
            [
                RasterBand.create(
                    nodata=_number(layer.nodata),
                    data_type=DataType(layer.dtype),
                    scale=layer.scale,
                    offset=layer.offset,
                    unit=layer.unit or None,
                    spatial_resolution=plan.resolution,
                )
            ]
        )
    return item


def _title(layer: ExportLayer) -> str:
    q = f" p{layer.percentile:g}" if layer.percentile is not None else ""
    return f"{layer.long_name}{q}, {layer.start} .. {layer.end}"


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def write_export_collection(plan: ExportPlan) -> Path:
    """Write the Collection and its Items (self-contained: relative links) into
    ``plan.folder``; returns the Collection's path."""
    collection = build_export_collection(plan)
    collection.catalog_type = pystac.CatalogType.SELF_CONTAINED
    collection.save(dest_href=str(plan.folder))
    return plan.folder / STAC_FILE
