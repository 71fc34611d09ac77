"""Checking a Landsat composite store against the demo archive's truth, for tests: every
output pixel of an ODSE year equals ``numpy.nanpercentile`` of that year's clear truth
(linear, Hyndman-Fan type 7) within half a DN, and ``valid_count`` the clear count."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

from cubehub.seasons import odse_quarters

__all__ = [
    "BANDS",
    "PERCENTILES",
    "SR_BANDS",
    "TOLERANCE",
    "assert_year_matches_truth",
    "nanpercentile",
    "season_values",
]

SR_BANDS = ("blue", "green", "red", "nir08", "swir16", "swir22")
"""The six surface reflectance bands of the ODSE product."""
BANDS = (*SR_BANDS, "lwir11")
"""The seven ODSE bands: reflectance and surface temperature (kelvin)."""
PERCENTILES = [25.0, 50.0, 75.0]
"""The composite's percentiles."""
TOLERANCE = {**dict.fromkeys(SR_BANDS, 0.5 * 2.75e-5 + 1e-6), "lwir11": 0.5 * 0.00341802 + 1e-4}
"""Half a DN of each band (reflectance: 1; kelvin), plus float32 arithmetic on the way."""


def nanpercentile(values: np.ndarray) -> np.ndarray:
    """p25/p50/p75 over axis 0 of ``values`` (NaN: not observed); all-NaN pixels give NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels give NaN, as wanted
        result: np.ndarray = np.nanpercentile(values, PERCENTILES, axis=0)
    return result


def assert_year_matches_truth(
    out: xr.Dataset,
    truth: xr.Dataset,
    year: int,
    *,
    bands: Sequence[str] = BANDS,
    min_overpasses: int = 11,
) -> None:
    """Assert that the four ODSE seasons of ``year`` in ``out`` (a decoded store) are the
    percentiles of ``truth``'s clear values (``LandsatArchive.truth()``, loaded, on the
    store's grid) in each of ``bands`` (default :data:`BANDS`), within :data:`TOLERANCE`,
    NaN exactly where no clear value is, and ``valid_count`` the clear count. Each season
    needs ``min_overpasses``."""
    np.testing.assert_allclose(out.x.values, truth.x.values)
    np.testing.assert_allclose(out.y.values, truth.y.values)
    calendar = odse_quarters([year])
    season_of = calendar.assign(truth.time.values)
    clear = truth["clear"].values
    for k, window in enumerate(calendar.windows):
        in_season = season_of == k
        assert in_season.sum() >= min_overpasses, (
            f"the archive should have overpasses in {window.label}"
        )
        for band in bands:
            expected = nanpercentile(np.where(clear, truth[band].values, np.nan)[in_season])
            got = season_values(out, band, window.label)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=band)
            np.testing.assert_allclose(
                got, expected, atol=TOLERANCE[band], rtol=0, err_msg=f"{band} {window.label}"
            )
        counts = out["valid_count"].sel(season=window.label).values
        np.testing.assert_array_equal(counts, clear[in_season].sum(axis=0))


def season_values(out: xr.Dataset, band: str, label: str) -> np.ndarray:
    """One season's values of ``band`` as (percentile, y, x)."""
    got: np.ndarray = out[band].sel(season=label).transpose("percentile", "y", "x").values
    return got
