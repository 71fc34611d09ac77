"""seasonal_composite: index modes, empty seasons, and the errors raised before any pixel is read."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import dask
import numpy as np
import odc.stac
import pytest
import stackstac
import xarray as xr
from odc.geo.geobox import GeoBox

from cubehub.catalog.items import NormalizedItems, normalize_items
from cubehub.composite import seasonal_composite
from cubehub.compute.masks import QaPixelMaskRule, SclMaskRule
from cubehub.cube import load_cube
from cubehub.cube_view import clear_observations
from cubehub.demo.servers import serve_files
from cubehub.errors import EmptySeasonWarning, InputError
from cubehub.grid import OutputGrid
from cubehub.seasons import custom_calendar, odse_quarters


@pytest.fixture(scope="module")
def served(small_archive: Any) -> Any:
    with serve_files(small_archive.root) as files:
        yield small_archive, files.url


def _cube(served: Any, bands: list[str]) -> Any:
    archive, url = served
    return load_cube(archive.item_dicts(url), bands, OutputGrid(archive.epsg, 10.0, archive.bounds))


def test_index_of_the_composite_bands(served: Any) -> None:
    cube = _cube(served, ["blue", "red", "nir"])
    out = seasonal_composite(
        cube,
        odse_quarters([2022]),
        indices=["NDVI", "EVI"],
        index_mode="of-composite",
    )
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
    per_obs = seasonal_composite(cube, calendar, indices=["NDVI"])
    of_comp = seasonal_composite(cube, calendar, indices=["NDVI"], index_mode="of-composite")
    with dask.config.set(scheduler="threads"):
        a = per_obs["NDVI"].sel(percentile=25).compute()
        b = of_comp["NDVI"].sel(percentile=25).compute()
    # p25 of per-scene NDVI is not the NDVI of p25 bands: the two modes are distinct products.
    assert float(abs(a - b).max()) > 0.01


def test_a_season_without_acquisitions_is_nan_with_count_0_and_a_warning(served: Any) -> None:
    cube = _cube(served, ["red", "nir"])
    calendar = custom_calendar([("summer", "06-25", "09-12")], [2022, 2030])
    with pytest.warns(EmptySeasonWarning, match="2030-summer have no acquisitions"):
        out = seasonal_composite(cube, calendar, indices=["NDVI"])
    with dask.config.set(scheduler="threads"):
        out = out.compute()
    empty, full = out.sel(season="2030-summer"), out.sel(season="2022-summer")
    for name in ("red", "nir", "NDVI"):
        assert bool(empty[name].isnull().all()), name
        assert bool(full[name].notnull().any()), name
    assert int(empty["valid_count"].max()) == 0 and int(full["valid_count"].max()) > 0


def test_index_bands_the_cube_lacks(served: Any) -> None:
    cube = _cube(served, ["red", "green"])
    with pytest.raises(InputError, match=r"need band.*nir"):
        seasonal_composite(cube, odse_quarters([2022]), indices=["NDVI"])


@pytest.mark.parametrize("q", [[], [-1, 50], [50, 101]])
def test_percentiles_outside_0_100(served: Any, q: list[float]) -> None:
    cube = _cube(served, ["red", "nir"])
    with pytest.raises(InputError, match="percentile"):
        seasonal_composite(cube, odse_quarters([2022]), percentiles=q)


# --- defaults a new user relies on, and cubes built by other tools ---------------------------


def _season_counts(archive: Any, calendar: Any) -> np.ndarray:
    truth = archive.truth()
    season_of = calendar.assign(truth.time.values)
    clear = truth["clear"].values
    return np.stack([clear[season_of == k].sum(axis=0) for k in range(len(calendar.windows))])


def test_by_default_clouds_are_masked_by_the_cubes_own_band(served: Any) -> None:
    archive, _ = served
    cube = _cube(served, ["red", "nir"])
    calendar = odse_quarters([2022])
    with dask.config.set(scheduler="threads"):
        counts = seasonal_composite(cube, calendar)["valid_count"].compute().values
        unmasked = seasonal_composite(cube, calendar, clear=False)["valid_count"].compute()
    np.testing.assert_array_equal(counts, _season_counts(archive, calendar))
    assert (unmasked.values >= counts).all() and (unmasked.values > counts).any()


def test_no_index_unless_asked_so_a_cube_without_nir_composites(served: Any) -> None:
    cube = _cube(served, ["red", "green"])
    out = seasonal_composite(cube, odse_quarters([2022]))
    assert set(out.data_vars) == {"red", "green", "valid_count"}
    with pytest.raises(InputError, match="load the cube with them") as info:
        seasonal_composite(cube, odse_quarters([2022]), indices="NDVI")
    assert "job's bands" not in str(info.value)


def test_a_mask_rule_applies_to_the_cubes_mask_band(served: Any) -> None:
    cube = _cube(served, ["red"])
    rule = SclMaskRule(dilate_cloud_m=30)
    a = seasonal_composite(cube, odse_quarters([2022]), clear=rule)["valid_count"]
    b = seasonal_composite(cube, odse_quarters([2022]), clear=clear_observations(cube, rule))
    with dask.config.set(scheduler="threads"):
        xr.testing.assert_equal(a.compute(), b["valid_count"].compute())


def test_a_rule_of_the_other_sensor_is_refused(served: Any) -> None:
    """A QA_PIXEL rule read on SCL classes would keep and drop the wrong pixels silently."""
    cube = _cube(served, ["red"])
    with pytest.raises(InputError, match="QaPixelMaskRule cannot read the cube's scl band"):
        seasonal_composite(cube, odse_quarters([2022]), clear=QaPixelMaskRule())


def _normalised(served: Any) -> NormalizedItems:
    archive, url = served
    return normalize_items(archive.item_dicts(url), bands=["red", "nir"])


def _assert_same_composite(theirs: xr.Dataset, ours: xr.Dataset) -> None:
    with dask.config.set(scheduler="threads"):
        theirs, ours = theirs.compute(), ours.compute()
    assert theirs.rio.crs == ours.rio.crs
    np.testing.assert_array_equal(theirs["valid_count"].values, ours["valid_count"].values)
    for name in ("red", "nir", "NDVI"):
        np.testing.assert_allclose(
            theirs[name].values, ours[name].values, atol=2e-6, rtol=0, err_msg=name
        )


def test_a_stackstac_cube_composites_to_the_same_values(served: Any) -> None:
    archive, _ = served
    items = _normalised(served)
    # As a stackstac user would: float64 reflectance, each item rescaled by its raster:bands.
    stack = stackstac.stack(
        items.items,
        assets=list(items.assets),
        epsg=archive.epsg,
        resolution=10.0,
        bounds=archive.bounds,
        snap_bounds=False,
        xy_coords="center",
        chunksize=32,
    )
    assert stack.dtype == np.float64 and stack.rio.crs.to_epsg() == archive.epsg
    calendar = odse_quarters([2022])
    ours = seasonal_composite(_cube(served, ["red", "nir"]), calendar, indices=["NDVI"])
    _assert_same_composite(seasonal_composite(stack, calendar, indices=["NDVI"]), ours)


def test_an_odc_stac_cube_composites_to_the_same_values(served: Any) -> None:
    archive, _ = served
    items = _normalised(served)
    # odc-stac reads DNs as stored and cannot harmonise offsets that differ between items:
    # keep the items of the common encoding, and declare it the CF way.
    common = tuple(
        i for i in items.items if i.assets["red"].extra_fields["raster:bands"][0]["offset"] == 0
    )
    assert 10 < len(common) < len(items.items)
    cube = odc.stac.load(
        common,
        bands=list(items.assets),
        geobox=GeoBox.from_bbox(archive.bounds, crs=archive.epsg, resolution=10.0),
        chunks={"x": 32, "y": 32},
    )
    for band in ("red", "nir"):
        cube[band].attrs.update(scale_factor=1e-4, add_offset=0.0)
    calendar = odse_quarters([2022])
    ours = seasonal_composite(
        load_cube(
            replace(items, items=common),
            ["red", "nir"],
            OutputGrid(archive.epsg, 10.0, archive.bounds),
        ),
        calendar,
        indices=["NDVI"],
    )
    _assert_same_composite(seasonal_composite(cube, calendar, indices=["NDVI"]), ours)


def test_a_cube_without_crs_or_mask_says_what_to_add(served: Any) -> None:
    cube = _cube(served, ["red"])
    with pytest.raises(InputError, match="no CRS"):
        seasonal_composite(cube.drop_vars("spatial_ref"), odse_quarters([2022]))
    with pytest.raises(InputError, match="no cloud-mask band"):
        seasonal_composite(cube.drop_vars("scl"), odse_quarters([2022]))
    out = seasonal_composite(cube.drop_vars("scl"), odse_quarters([2022]), clear=False)
    assert "red" in out
