"""seasonal_composite: index modes and the errors raised before any pixel is read."""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
import pytest
import xarray as xr

from cubehub.composite import seasonal_composite
from cubehub.cube import OutputGrid, load_cube
from cubehub.errors import InputError
from cubehub.seasons import custom_calendar, odse_quarters
from cubehub.testing.servers import serve_files


@pytest.fixture(scope="module")
def served(small_archive: Any) -> Any:
    with serve_files(small_archive.root) as files:
        yield small_archive, files.url


def _cube(served: Any, bands: list[str]) -> Any:
    archive, url = served
    return load_cube(archive.item_dicts(url), bands, OutputGrid(archive.epsg, 10.0, archive.bounds))


def test_index_of_the_composite_bands(served: Any) -> None:
    cube = _cube(served, ["blue", "red", "nir"])
    out = seasonal_composite(cube, odse_quarters([2022]), clear=cube.clear(), indices=["NDVI", "EVI"],
                             index_mode="of-composite")
    with dask.config.set(scheduler="threads"):
        out = out.sel(season="2022-summer").compute()
    expected = (out["nir"] - out["red"]) / (out["nir"] + out["red"])
    xr.testing.assert_allclose(out["NDVI"], expected.astype(np.float32), rtol=1e-5)
    g, c1, c2, big_l = 2.5, 6.0, 7.5, 1.0  # spyndex's EVI constants
    evi = g * (out["nir"] - out["red"]) / (out["nir"] + c1 * out["red"] - c2 * out["blue"] + big_l)
    xr.testing.assert_allclose(out["EVI"], evi.astype(np.float32), rtol=1e-4)


def test_index_per_observation_differs_from_index_of_composite(served: Any) -> None:
    cube = _cube(served, ["red", "nir"])
    calendar = odse_quarters([2022])
    per_obs = seasonal_composite(cube, calendar, clear=cube.clear(), indices=["NDVI"])
    of_comp = seasonal_composite(cube, calendar, clear=cube.clear(), indices=["NDVI"], index_mode="of-composite")
    with dask.config.set(scheduler="threads"):
        a = per_obs["NDVI"].sel(percentile=25).compute()
        b = of_comp["NDVI"].sel(percentile=25).compute()
    # p25 of per-scene NDVI is not the NDVI of p25 bands: the two modes are distinct products.
    assert float(abs(a - b).max()) > 0.01


def test_a_season_without_acquisitions_is_refused_before_compute(served: Any) -> None:
    cube = _cube(served, ["red", "nir"])
    calendar = custom_calendar([("summer", "06-25", "09-12")], [2022, 2030])
    with pytest.raises(InputError, match="2030-summer have no acquisitions"):
        seasonal_composite(cube, calendar, clear=cube.clear())


def test_index_bands_the_cube_lacks(served: Any) -> None:
    cube = _cube(served, ["red", "green"])
    with pytest.raises(InputError, match=r"need band.*nir"):
        seasonal_composite(cube, odse_quarters([2022]), indices=["NDVI"])


@pytest.mark.parametrize("q", [[], [-1, 50], [50, 101]])
def test_percentiles_outside_0_100(served: Any, q: list[float]) -> None:
    cube = _cube(served, ["red", "nir"])
    with pytest.raises(InputError, match="percentile"):
        seasonal_composite(cube, odse_quarters([2022]), percentiles=q)
