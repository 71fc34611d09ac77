"""Sample a composite store at points: one column per variable x season x percentile, the
clear-observation counts, and a status per point; on Dask.

Points outside the grid or in a tile not complete in every season are kept and flagged
(``cubehub_status``), never dropped: their values are NaN where the store has none. The
values come from one vectorised selection over the lazy store, so Dask reads each chunk
that holds a point once, in one task per chunk, and keeps only the sampled values: memory
is bounded by the chunks in flight (threads x one chunk per variable), not by the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from dask.base import compute

from cubehub.errors import InputError
from cubehub.grid import pixel_index
from cubehub.learn.features import Feature, Naming, store_features

__all__ = ["STATUS", "check_samples_path", "sample_points", "summary", "write_samples"]

#: Column names cubehub adds besides the features.
STATUS, ROW, COL = "cubehub_status", "cubehub_row", "cubehub_col"
#: Values of :data:`STATUS`.
OK, OUTSIDE, INCOMPLETE = "ok", "outside grid", "incomplete tile"


def sample_points(
    ds: xr.Dataset,
    points: gpd.GeoDataFrame,
    *,
    naming: Naming = "cube",
    client: Any = None,
) -> gpd.GeoDataFrame:
    """The store's features at each point, with its status.

    Args:
        ds: a composite from :func:`cubehub.output.open.open_composite` (``complete_only``,
            the default there, so that unwritten tiles read as NaN, not as fill values).
        points: point features in any CRS (see :func:`cubehub.learn.points.read_points`).
        naming: feature column names, ``"cube"`` (``red_2022-summer_p50``, default) or
            ``"odse"`` (``red_p50_2022.06.25..2022.09.12``); see :mod:`cubehub.learn.features`.
        client: a Dask client to compute on; default None: Dask's current scheduler.

    Returns:
        ``points`` (same rows, order, columns and CRS) plus one float column per feature
        (reflectance, index value or count; NaN where the store has none),
        ``cubehub_status`` (``"ok"``, ``"outside grid"`` or ``"incomplete tile"``: a tile not
        complete in every season), and ``cubehub_row``/``cubehub_col`` (pixel, -1 outside).

    Raises:
        InputError: a column of ``points`` would be overwritten by a feature, or the store
            has no CRS; raised before any pixel is read.
    """
    features = store_features(ds, naming)
    clash = sorted(({f.name for f in features} | {STATUS, ROW, COL}) & set(points.columns))
    if clash:
        raise InputError(
            f"the points already have column(s) {', '.join(clash)}, which sampling writes; "
            "rename or drop them first"
        )
    crs = ds.rio.crs
    if crs is None:
        raise InputError("the store has no CRS (no spatial_ref); it was not written by cubehub")
    rows, cols = pixel_index(
        points.geometry.x.to_numpy(),
        points.geometry.y.to_numpy(),
        points.crs,
        crs,
        ds.rio.transform(),
        (ds.sizes["y"], ds.sizes["x"]),
    )
    inside = rows >= 0
    picked = _pick(ds, rows[inside], cols[inside], client)

    columns: dict[str, np.ndarray] = {}
    for f in features:
        full = np.full(len(points), np.nan, dtype=np.float32)
        full[inside] = _values(picked, f)
        columns[f.name] = full
    complete = np.zeros(len(points), dtype=bool)
    complete[inside] = np.asarray(picked["complete"].all("season").values, dtype=bool)
    status = np.where(~inside, OUTSIDE, np.where(complete, OK, INCOMPLETE))
    extra = pd.DataFrame({**columns, STATUS: status, ROW: rows, COL: cols}, index=points.index)
    return gpd.GeoDataFrame(pd.concat([points, extra], axis=1), crs=points.crs)


def _pick(ds: xr.Dataset, rows: np.ndarray, cols: np.ndarray, client: Any) -> xr.Dataset:
    """The per-season variables and ``complete`` at the pixels, computed."""
    names = [str(n) for n, v in ds.data_vars.items() if "season" in v.dims]
    keep = ds[names]
    keep = keep.drop_vars([c for c in keep.coords if c not in ("season", "percentile", "complete")])
    picked = keep.isel(y=xr.DataArray(rows, dims="point"), x=xr.DataArray(cols, dims="point"))
    if client is not None:
        result: xr.Dataset = client.compute(picked).result()
        return result
    (computed,) = compute(picked)
    return computed  # type: ignore[no-any-return]


def _values(picked: xr.Dataset, f: Feature) -> np.ndarray:
    var = picked[f.variable].sel(season=f.season)
    if f.percentile is not None:
        var = var.sel(percentile=f.percentile)
    return np.asarray(var.values, dtype=np.float32)


def check_samples_path(path: str | Path) -> Path:
    """``path`` if it names a GeoParquet file (``.parquet``); else :class:`InputError`."""
    path = Path(path)
    if path.suffix.lower() not in (".parquet", ".geoparquet"):
        raise InputError(
            f"samples are written as GeoParquet: name the file *.parquet, not {path.name}"
        )
    return path


def write_samples(samples: gpd.GeoDataFrame, path: str | Path) -> Path:
    """Write samples as GeoParquet (``.parquet``, folders created); returns the path."""
    path = check_samples_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples.to_parquet(path)
    return path


def summary(samples: pd.DataFrame) -> Mapping[str, int]:
    """How many points have each status."""
    counts = samples[STATUS].value_counts()
    return {s: int(counts.get(s, 0)) for s in (OK, OUTSIDE, INCOMPLETE)}
