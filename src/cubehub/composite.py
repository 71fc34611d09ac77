"""Seasonal percentile composites of a cube: the xarray layer over the numba kernel.

For every season window of a calendar, the clear observations of each band are reduced to
the requested percentiles in one pass per pixel (see :mod:`cubehub.compute.percentile`),
on the native integer DNs; reflectance is computed once, from the percentiles. Spectral
indices are offered in both modes used in the field:

* ``per-observation`` (FORCE, ODSE): the index of every clear observation, then its
  seasonal percentiles;
* ``of-composite``: the index of the composite bands (e.g. NDVI of p50 red and p50 nir).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import dask.array as da
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from cubehub.compute.indices import compute_indices, index_bands
from cubehub.compute.percentile import Method, percentiles_dask
from cubehub.cube import NODATA, Cube
from cubehub.errors import InputError
from cubehub.seasons import SeasonCalendar

IndexMode = Literal["per-observation", "of-composite"]
DEFAULT_PERCENTILES = (25.0, 50.0, 75.0)


def check_composite_request(
    cube: Cube,
    calendar: SeasonCalendar,
    percentiles: Sequence[float],
    indices: Sequence[str],
) -> None:
    """Raise :class:`InputError` for a request that cannot give a meaningful composite.

    Runs on metadata only, before any pixel is read.
    """
    if not percentiles:
        raise InputError("give at least one percentile, e.g. [25, 50, 75]")
    bad = [q for q in percentiles if not 0 <= q <= 100]
    if bad:
        raise InputError(f"percentiles must lie within 0..100, got {bad}")
    available = set(cube.data.band.values.tolist())
    needed = index_bands(indices, available=available) if indices else set()
    missing = sorted(needed - available)
    if missing:
        raise InputError(
            f"index(es) {', '.join(indices)} need band(s) {', '.join(missing)} that the cube "
            "lacks; add them to the job's bands"
        )
    assigned = calendar.assign(cube.data.time.values)
    empty = [w.label for k, w in enumerate(calendar.windows) if not (assigned == k).any()]
    if empty:
        raise InputError(
            f"season(s) {', '.join(empty)} have no acquisitions in the items found; widen the "
            "search dates or choose years the archive covers"
        )


def seasonal_composite(
    cube: Cube,
    calendar: SeasonCalendar,
    *,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    clear: xr.DataArray | None = None,
    indices: Sequence[str] = ("NDVI",),
    index_mode: IndexMode = "per-observation",
    method: Method = "linear",
    min_count: int = 1,
) -> xr.Dataset:
    """Per-season percentiles of every band, valid-observation counts and indices; lazy.

    Args:
        cube: from :func:`cubehub.cube.load_cube`.
        calendar: season windows, e.g. :func:`cubehub.seasons.odse_quarters`.
        percentiles: in 0..100, default (25, 50, 75).
        clear: (time, y, x) boolean mask, True for observations to keep (see
            :func:`cubehub.compute.masks.clear_mask_xr`); None keeps all valid DNs.
        indices: spectral index names known to spyndex, default ``("NDVI",)``.
        index_mode: ``"per-observation"`` (default) or ``"of-composite"``.
        method: ``"linear"`` (as ``numpy.nanpercentile``) or ``"nearest"`` rank.
        min_count: pixels with fewer clear observations in a season are NaN.

    Returns:
        A dataset with one float32 variable per band and index, dims (season, percentile,
        y, x), reflectance units; ``valid_count`` (season, y, x), the number of clear
        observations; coordinates ``season`` (label), ``season_start``, ``season_end``,
        ``percentile``, and the CRS as a CF ``spatial_ref``.
    """
    check_composite_request(cube, calendar, percentiles, indices)
    q = [float(p) for p in percentiles]
    data = cube.data
    if clear is not None:
        data = data.where(clear, NODATA)
    bands = [str(b) for b in data.band.values]
    assigned = calendar.assign(data.time.values)

    per_band: dict[str, list[da.Array]] = {b: [] for b in bands}
    per_index: dict[str, list[da.Array]] = {n: [] for n in indices if index_mode == "per-observation"}
    # Only the bands the indices read: the others would add graph layers for nothing.
    index_inputs = sorted(index_bands(indices, available=bands)) if per_index else []
    counts: list[da.Array] = []
    for k, _window in enumerate(calendar.windows):
        season = data.isel(time=np.flatnonzero(assigned == k)).chunk(time=-1)
        # (T, band, y, x) -> (q, band, y, x), one sort per pixel for all percentiles.
        values, valid = percentiles_dask(season.data, q, nodata=NODATA, method=method, min_count=min_count)
        for j, band in enumerate(bands):
            per_band[band].append(values[:, j] * cube.scale[band] + cube.offset[band])
        # Clear observations of the first band: the mask is shared, nodata is per band.
        counts.append(valid[0])
        if per_index:
            reflectance = _reflectance(season.sel(band=index_inputs), cube)
            observed = compute_indices(reflectance, list(per_index))
            for name in per_index:
                index_values, _ = percentiles_dask(
                    observed[name].data, q, nodata=None, method=method, min_count=min_count
                )
                per_index[name].append(index_values)

    coords = _output_coords(cube, calendar, q)
    dims = ("season", "percentile", "y", "x")
    out = xr.Dataset(coords=coords)
    for band in bands:
        out[band] = (dims, da.stack(per_band[band]).astype(np.float32))
    for name, stacks in per_index.items():
        out[name] = (dims, da.stack(stacks).astype(np.float32))
    out["valid_count"] = (("season", "y", "x"), da.stack(counts))
    if index_mode == "of-composite" and indices:
        composite_indices = compute_indices(out[list(index_bands(indices, available=bands))], list(indices))
        for name in indices:
            out[name] = composite_indices[name].astype(np.float32)
    # The CF grid mapping (spatial_ref), so rioxarray, GDAL and to_zarr readers see the CRS.
    return out.rio.write_crs(cube.grid.epsg).rio.write_coordinate_system()


def _reflectance(season: xr.DataArray, cube: Cube) -> xr.Dataset:
    """float32 reflectance per band, NaN where missing, for per-observation indices."""
    out = {}
    for band in season.band.values.tolist():
        dn = season.sel(band=band, drop=True)
        refl = dn.astype(np.float32) * np.float32(cube.scale[band]) + np.float32(cube.offset[band])
        out[band] = refl.where(dn != NODATA)
    return xr.Dataset(out)


def _output_coords(cube: Cube, calendar: SeasonCalendar, q: list[float]) -> dict[str, object]:
    return {
        "season": ("season", np.array([w.label for w in calendar.windows], dtype=object)),
        "season_start": ("season", pd.to_datetime([w.start for w in calendar.windows])),
        "season_end": ("season", pd.to_datetime([w.end for w in calendar.windows])),
        "percentile": ("percentile", np.asarray(q)),
        "y": cube.data.y.values,
        "x": cube.data.x.values,
    }
