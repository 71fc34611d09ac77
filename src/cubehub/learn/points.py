"""Points to sample a store at, read from GeoJSON, GeoPackage or GeoParquet in any CRS.

Reading goes through geopandas (pyogrio for GeoJSON and GeoPackage, pyarrow for GeoParquet).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd

from cubehub.errors import InputError

__all__ = ["read_points"]

#: File suffixes read as GeoParquet; everything else goes to GDAL/OGR (pyogrio).
PARQUET_SUFFIXES = (".parquet", ".geoparquet", ".pq")
#: File suffixes :func:`read_points` accepts, for the error message.
SUFFIXES = (".geojson", ".json", ".gpkg", *PARQUET_SUFFIXES)


def read_points(path: str | Path, layer: str | None = None) -> gpd.GeoDataFrame:
    """Point features from a GeoJSON, GeoPackage or GeoParquet file, with their CRS.

    Args:
        path: the file; its suffix picks the reader (see :data:`SUFFIXES`).
        layer: layer of a multi-layer GeoPackage (default: its only layer).

    Raises:
        InputError: the file is missing or unreadable, has no CRS, no features, or
            geometries that are not points (each message says how to fix it).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no points file at {path}; give a GeoJSON, GeoPackage or GeoParquet file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(
            f"cannot read points from {path.name}: use one of {', '.join(SUFFIXES)} "
            "(GeoJSON, GeoPackage, GeoParquet)"
        )
    try:
        if suffix in PARQUET_SUFFIXES:
            points = gpd.read_parquet(path)
        else:
            points = gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as exc:  # the readers raise many types; all mean "cannot read this file"
        raise InputError(f"cannot read points from {path}: {exc}") from None
    if points.crs is None:
        raise InputError(
            f"{path.name} has no CRS; set one (e.g. ogr2ogr -a_srs EPSG:4326, or "
            "GeoDataFrame.set_crs) so that its coordinates can be placed on the store's grid"
        )
    if points.empty:
        raise InputError(f"{path.name} has no features; give at least one point")
    kinds = set(points.geometry.geom_type.dropna())
    if kinds - {"Point"} or points.geometry.isna().any():
        raise InputError(
            f"{path.name} must hold points only, found {', '.join(sorted(map(str, kinds))) or 'none'}"
            f"{' and empty geometries' if points.geometry.isna().any() else ''}; take centroids "
            "(GeoDataFrame.centroid) or a representative_point() of polygons first"
        )
    return points
