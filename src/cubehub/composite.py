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

import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal, TypeAlias

import dask.array as da
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from cubehub.compute.indices import compute_indices, index_bands
from cubehub.compute.masks import QaPixelMaskRule, SclMaskRule
from cubehub.compute.percentile import (
    DEFAULT_PERCENTILES,
    Method,
    check_percentiles,
    percentiles_dask,
)
from cubehub.compute.season_percentiles import BandEncoding, band_percentiles_dask
from cubehub.cube_view import CubeBand, CubeView, read_cube
from cubehub.errors import EmptySeasonWarning, InputError
from cubehub.seasons import SeasonCalendar

IndexMode = Literal["per-observation", "of-composite"]
#: What ``clear`` takes: a mask, a rule for the cube's mask band, its default (None), or no
#: masking (False).
Clear: TypeAlias = xr.DataArray | SclMaskRule | QaPixelMaskRule | Literal[False] | None


def check_composite_request(
    view: CubeView,
    calendar: SeasonCalendar,
    percentiles: Sequence[float],
    indices: Sequence[str],
) -> tuple[float, ...]:
    """The percentiles, checked; :class:`InputError` for a request that cannot give a
    meaningful composite. Runs on metadata only, before any pixel is read. A season
    without acquisitions is not an error: its layers are NaN (see :func:`seasonal_composite`).
    """
    q = check_percentiles(percentiles)
    available = set(view.bands)
    needed = index_bands(indices, available=available) if indices else set()
    missing = sorted(needed - available)
    if missing:
        raise InputError(
            f"index(es) {', '.join(indices)} need band(s) {', '.join(missing)} that the cube "
            f"lacks (it has {', '.join(view.bands)}); load the cube with them (a job: add them "
            "to bands), or leave the index out"
        )
    return q


def seasonal_composite(
    cube: xr.Dataset | xr.DataArray,
    calendar: SeasonCalendar,
    *,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    clear: Clear = None,
    indices: str | Sequence[str] = (),
    index_mode: IndexMode = "per-observation",
    method: Method = "linear",
    min_count: int = 1,
) -> xr.Dataset:
    """Per-season percentiles of every band, valid-observation counts and indices; lazy.

    Args:
        cube: from :func:`cubehub.cube.load_cube`, or any cube as :mod:`cubehub.cube_view`
            reads it: a ``stackstac.stack`` DataArray, an ``odc.stac.load`` Dataset; bands
            decode by their CF ``scale_factor``/``add_offset``, missing values are NaN or the
            ``_FillValue``.
        calendar: season windows, e.g. :func:`cubehub.seasons.odse_quarters`.
        percentiles: in percent (0..100, not fractions), default (25, 50, 75).
        clear: which observations to keep. None (default): the clear ones by the cube's
            mask band (``scl`` or ``qa_pixel``) and its default rule; a mask rule (e.g.
            ``SclMaskRule(dilate_cloud_m=300)``) applied to that band; a (time, y, x)
            boolean DataArray; or False to keep every valid observation, clouds included.
        indices: spectral index names known to spyndex, e.g. ``["NDVI"]`` (one may be a
            string); default none.
        index_mode: ``"per-observation"`` (default) or ``"of-composite"``.
        method: ``"linear"`` (as ``numpy.nanpercentile``) or ``"nearest"`` rank.
        min_count: pixels with fewer clear observations in a season are NaN.

    Returns:
        A dataset with one float32 variable per band and index, dims (season, percentile,
        y, x), physical units (reflectance; kelvin for thermal bands) with the cube's
        ``units`` and ``long_name`` where it has them; ``valid_count`` (season, y, x), the number of
        clear observations; coordinates ``season`` (label), ``season_start``,
        ``season_end``, ``percentile``, and the CRS as a CF ``spatial_ref``. A season
        without acquisitions in the cube has NaN layers and ``valid_count`` 0, with an
        :class:`~cubehub.errors.EmptySeasonWarning`.
    """
    view = read_cube(cube)
    indices = [indices] if isinstance(indices, str) else list(indices)
    q = list(check_composite_request(view, calendar, percentiles, indices))
    per_window = calendar.counts(view.time.values)
    empty = [w.label for w, n in zip(calendar.windows, per_window, strict=True) if n == 0]
    if empty:
        warnings.warn(
            f"season(s) {', '.join(empty)} have no acquisitions in the cube: their layers are "
            "NaN and valid_count 0",
            EmptySeasonWarning,
            stacklevel=2,
        )
    keep = _clear_of(view, clear)
    bands = list(view.bands.values())
    assigned = calendar.assign(view.time.values)

    per_band: dict[str, list[da.Array]] = {b.name: [] for b in bands}
    per_index: dict[str, list[da.Array]] = {
        n: [] for n in indices if index_mode == "per-observation"
    }
    # Only the bands the indices read: the others would add graph layers for nothing.
    index_inputs = sorted(index_bands(indices, available=view.bands)) if per_index else []
    counts: list[da.Array] = []
    encodings = [BandEncoding(b.nodata, b.scale, b.offset) for b in bands]
    for k, _window in enumerate(calendar.windows):
        at = np.flatnonzero(assigned == k)
        # (T, y, x) -> (q, y, x) for every band in one task per chunk, one sort per pixel
        # for all percentiles; the count of clear observations (the mask is shared).
        values, valid = band_percentiles_dask(
            [_dask(b.data.isel(time=at)) for b in bands],
            encodings,
            q,
            keep=None if keep is None else _dask(_like(keep, bands[0].data).isel(time=at)),
            method=method,
            min_count=min_count,
        )
        for band, band_values in zip(bands, values, strict=True):
            per_band[band.name].append(band_values)
        counts.append(valid)
        if per_index:
            season = {
                name: _masked(view.bands[name], keep).isel(time=at).chunk(time=-1)
                for name in index_inputs
            }
            reflectance = xr.Dataset(
                {
                    name: replace(view.bands[name], data=season[name]).reflectance()
                    for name in index_inputs
                }
            )
            observed = compute_indices(reflectance, list(per_index))
            for name in per_index:
                index_values, _ = percentiles_dask(
                    observed[name].data, q, nodata=None, method=method, min_count=min_count
                )
                per_index[name].append(index_values)

    coords = _output_coords(view, calendar, q)
    dims = ("season", "percentile", "y", "x")
    out = xr.Dataset(coords=coords)
    for band in bands:
        # The cube's own units and long name (kelvin for thermal bands), where it says.
        described = {k: band.data.attrs[k] for k in ("units", "long_name") if k in band.data.attrs}
        out[band.name] = (dims, da.stack(per_band[band.name]).astype(np.float32), described)
    for name, stacks in per_index.items():
        out[name] = (dims, da.stack(stacks).astype(np.float32))
    out["valid_count"] = (("season", "y", "x"), da.stack(counts))
    if index_mode == "of-composite" and indices:
        composite_indices = compute_indices(
            out[list(index_bands(indices, available=view.bands))], list(indices)
        )
        for name in indices:
            out[name] = composite_indices[name].astype(np.float32)
    # The CF grid mapping (spatial_ref), so rioxarray, GDAL and to_zarr readers see the CRS.
    placed: xr.Dataset = out.rio.write_crs(view.crs).rio.write_coordinate_system()
    return placed


def _clear_of(view: CubeView, clear: Clear) -> xr.DataArray | None:
    """The (time, y, x) observations to keep, or None to keep every valid one."""
    if clear is False:
        return None
    if clear is None or isinstance(clear, SclMaskRule | QaPixelMaskRule):
        return view.clear(clear)
    if isinstance(clear, xr.DataArray):
        return clear
    raise InputError(
        f"clear must be None (the cube's mask band), a mask rule, a (time, y, x) boolean "
        f"DataArray or False (no masking), got {type(clear).__name__}"
    )


def _like(mask: xr.DataArray, band: xr.DataArray) -> xr.DataArray:
    """``mask`` broadcast to the band's dims, in its order (as ``band.where(mask)`` reads it)."""
    return mask.broadcast_like(band).transpose(*band.dims)


def _dask(data: xr.DataArray) -> da.Array:
    """The dask array under ``data`` (a numpy-backed cube becomes one chunk)."""
    return data.data if isinstance(data.data, da.Array) else data.chunk().data


def _masked(band: CubeBand, keep: xr.DataArray | None) -> xr.DataArray:
    """The band with observations that are not kept set missing."""
    if keep is None:
        return band.data
    if band.nodata is None:
        return band.data.where(keep)
    return band.data.where(keep, band.data.dtype.type(band.nodata))


def _output_coords(view: CubeView, calendar: SeasonCalendar, q: list[float]) -> dict[str, object]:
    first = next(iter(view.bands.values())).data
    return {
        "season": ("season", np.array([w.label for w in calendar.windows], dtype=object)),
        "season_start": ("season", pd.to_datetime([w.start for w in calendar.windows])),
        "season_end": ("season", pd.to_datetime([w.end for w in calendar.windows])),
        "percentile": ("percentile", np.asarray(q)),
        "y": first.y.values,
        "x": first.x.values,
    }
