"""The cube layer: output grids, harmonised DNs, budgets and bad input, before any pixel is read."""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import rasterio
import xarray as xr
from pyproj import CRS

from cubehub.cube import cube_budget, cube_grid, gdal_env, load_cube
from cubehub.demo.servers import serve_files
from cubehub.errors import DataError, InputError
from cubehub.grid import OutputGrid, grid_for_bbox
from cubehub.testing.catalog import (
    landsat_items,
    landsat_scene_lonlat,
    synthetic_items,
    tile_bbox_lonlat,
)
from realdata import pc_landsat

BANDS = ["red", "nir"]
_WEST, _SOUTH, _, _NORTH = tile_bbox_lonlat(0)
#: A box inside tile 0 of :func:`synthetic_items`.
_BOX = (_WEST + 0.2, _SOUTH + 0.2, _WEST + 0.3, _NORTH - 0.6)


def test_grid_bounds_snap_outward_to_the_pixel_grid() -> None:
    grid = grid_for_bbox((15.60, 47.00, 15.70, 47.07), 3035, 30.0)
    assert all(v % 30 == 0 for v in grid.bounds)
    rows, cols = grid.shape
    assert 200 < rows < 400 and 200 < cols < 400


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resolution": 0}, "resolution must be a positive"),
        ({"resolution": -10}, "resolution must be a positive"),
        ({"epsg": 999999}, "EPSG:999999 is not a CRS"),
        ({"resolution": 0.001}, "above the limit"),
    ],
)
def test_bad_grids(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "bbox_lonlat": (15.6, 47.0, 15.7, 47.1),
        "epsg": 32633,
        "resolution": 10.0,
    }
    args |= kwargs
    with pytest.raises(InputError, match=message):
        grid_for_bbox(**args)


def test_grid_size_limit_is_configurable() -> None:
    with pytest.raises(InputError, match="above the limit of 1e"):
        grid_for_bbox((15.6, 47.0, 15.7, 47.1), 32633, 10.0, max_pixels=10_000)


def test_unknown_band_lists_the_valid_ones() -> None:
    with pytest.raises(InputError, match=r"valid names: .*blue.*red"):
        load_cube(synthetic_items(8), ["red", "infrared"], bbox=tile_bbox_lonlat(0))


def test_cube_from_metadata_only_reads_nothing_and_reports_its_budget() -> None:
    items = synthetic_items(400, tiles=4)
    west, south, _, north = tile_bbox_lonlat(0)
    bbox = (west + 0.2, south + 0.2, west + 0.3, north - 0.6)
    # The hrefs point at a closed port: any read would fail.
    cube = load_cube(items, BANDS, bbox=bbox)
    assert all(cube[b].dtype == np.uint16 for b in BANDS)
    budget = cube_budget(cube)
    assert budget.items == cube.sizes["time"] == 100  # only tile 0's items meet the box
    rows, cols = cube_grid(cube).shape
    assert budget.bytes_decoded == 100 * 3 * rows * cols * 2
    assert 0 < budget.tasks < 50_000
    # Post-2022-01-25 items say offset -0.1 but boa_offset_applied: their DNs need no shift.
    assert [cube[b].attrs["add_offset"] for b in BANDS] == [0.0, 0.0]
    assert [cube[b].attrs["scale_factor"] for b in BANDS] == [1e-4, 1e-4]


def test_harmonize_is_refused_for_sentinel_2_and_items_without_a_platform() -> None:
    with pytest.raises(InputError, match=r"harmonize='roy2016' moves Landsat.*sentinel-2"):
        load_cube(synthetic_items(8), BANDS, bbox=_BOX, harmonize="roy2016")
    with pytest.raises(
        InputError, match=r"unknown harmonisation 'roy2017'; choose one of: roy2016"
    ):
        load_cube(synthetic_items(8), BANDS, bbox=_BOX, harmonize="roy2017")
    items = landsat_items(date(2015, 6, 1), date(2015, 7, 31))
    west, south, _, _ = landsat_scene_lonlat(196, 25)
    box = (west + 0.5, south + 0.5, west + 0.6, south + 0.6)
    cube = load_cube(items, ["red", "lwir11"], bbox=box, harmonize="roy2016")  # reads nothing
    assert cube["red"].dtype == np.uint16 and cube.sizes["time"] == len(items)
    del items[0]["properties"]["platform"]
    with pytest.raises(DataError, match=rf"item {items[0]['id']} names no platform"):
        load_cube(items, ["red"], bbox=box, harmonize="roy2016")


def test_cube_in_laea_europe_reads_the_archive_through_http(small_archive: Any) -> None:
    with serve_files(small_archive.root) as files:
        items = small_archive.item_dicts(files.url)[:8]
        cube = load_cube(items, BANDS, epsg=3035, resolution=20.0, bbox=small_archive.bbox_lonlat())
        assert cube_grid(cube).epsg == 3035 and cube.rio.crs.to_epsg() == 3035
        with dask.config.set(scheduler="threads"):
            red = cube["red"].compute().values
    truth = small_archive.truth()["red"].isel(time=slice(0, 8)).load()
    assert red.shape[0] == 8 and (red > 0).mean() > 0.3
    # Reprojected with nearest neighbour: the values present are DNs of the archive.
    dn = np.unique(red[red > 0])
    assert dn.min() >= 1 and dn.max() <= 10_000 + 1000 + 300
    assert float(truth.max()) > 0


def test_explicit_grid_is_used_as_given(small_archive: Any) -> None:
    grid = OutputGrid(small_archive.epsg, 10.0, small_archive.bounds)
    cube = load_cube(small_archive.item_dicts("http://127.0.0.1:9"), BANDS, grid)
    assert cube.sizes["y"] == cube.sizes["x"] == 64
    assert float(cube.x[0]) == small_archive.bounds[0] + 5.0
    assert cube_grid(cube) == grid


# --- the xarray face, and inputs a new user gets wrong ---------------------------------------


def test_the_cube_is_xarray_with_its_crs_and_cf_encoding(small_archive: Any) -> None:
    with serve_files(small_archive.root) as files:
        items = small_archive.item_dicts(files.url)
        grid = OutputGrid(small_archive.epsg, 10.0, small_archive.bounds)
        cube = load_cube(items, BANDS, grid)
        assert isinstance(cube, xr.Dataset) and set(cube.data_vars) == {"red", "nir", "scl"}
        assert cube.rio.crs.to_epsg() == small_archive.epsg == cube["red"].rio.crs.to_epsg()
        assert cube["scl"].attrs["flag_values"][3] == 3
        assert cube["scl"].attrs["flag_meanings"].split()[3] == "cloud_shadow"
        with dask.config.set(scheduler="threads"):
            reflectance = xr.decode_cf(cube)[["red", "nir"]].compute()
    truth = small_archive.truth().load()
    clear = truth["clear"].values
    for band in BANDS:
        got = reflectance[band].values
        assert np.isnan(got).any()  # the swath edge and nodata decode to NaN
        # Every item decodes to the truth, whichever DN offset its processing baseline had.
        np.testing.assert_allclose(got[clear], truth[band].values[clear], atol=1e-6, rtol=0)


@pytest.mark.parametrize("epsg", ["3035", "EPSG:3035", CRS.from_epsg(3035)])
def test_epsg_in_every_spelling(epsg: Any) -> None:
    cube = load_cube(synthetic_items(8, tiles=1), BANDS, bbox=_BOX, epsg=epsg, resolution=20.0)
    assert cube.rio.crs.to_epsg() == 3035 == cube_grid(cube).epsg


def test_items_without_an_epsg_code_name_themselves_and_the_epsg_argument() -> None:
    items = synthetic_items(4, tiles=1)
    laea = CRS.from_proj4("+proj=laea +lat_0=47.3 +lon_0=15.1 +ellps=GRS80 +units=m").to_wkt()
    for item in items:
        for fields in (item["properties"], *item["assets"].values()):
            fields.pop("proj:code", None)
        item["properties"]["proj:wkt2"] = laea
    with pytest.raises(InputError, match=r"epsg=3035") as info:
        load_cube(items, BANDS, bbox=_BOX)
    assert items[0]["id"] in str(info.value) and "NoneType" not in str(info.value)
    assert load_cube(items, BANDS, bbox=_BOX, epsg=32633).rio.crs.to_epsg() == 32633


def test_a_box_that_misses_every_item_says_where_the_items_are() -> None:
    west, south, _, _ = _BOX
    with pytest.raises(InputError, match="meets none of the 8 items") as info:
        load_cube(
            synthetic_items(8, tiles=1), BANDS, bbox=(west - 5, south, west - 4.9, south + 0.1)
        )
    assert "could not convert" not in str(info.value)


def _without_georeferencing(source: str, target: Path) -> str:
    """``source`` rewritten as a plain TIFF whose georeferencing is only in a .aux.xml sidecar."""
    with rasterio.open(source) as src:
        data, crs, transform = src.read(), src.crs, src.transform
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(
            target,
            "w",
            driver="GTiff",
            width=data.shape[2],
            height=data.shape[1],
            count=1,
            dtype=data.dtype,
        ) as dst:
            dst.write(data)
    geo = ", ".join(str(v) for v in transform.to_gdal())
    Path(f"{target}.aux.xml").write_text(
        f"<PAMDataset><SRS>{crs.to_wkt()}</SRS><GeoTransform>{geo}</GeoTransform></PAMDataset>"
    )
    return str(target)


def test_gdal_settings_reach_the_layers_stackstac_opens_and_reads_in(
    small_archive: Any, tmp_path: Path
) -> None:
    with dask.config.set(
        {"cubehub.gdal.VSI_CACHE": "FALSE", "cubehub.gdal.GDAL_HTTP_TIMEOUT": "30"}
    ):
        env = gdal_env()
    for layer in (env.always, env.open, env.open_vrt, env.read):
        assert layer.options["VSI_CACHE"] == "FALSE" and layer.options["GDAL_HTTP_TIMEOUT"] == "30"
    # A real trap: GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR hides .aux.xml sidecars, and with
    # them the georeferencing of files that keep it there.
    (item,) = small_archive.item_dicts("http://127.0.0.1:9")[10:11]
    originals = {}
    for band in ("red", "scl"):
        rel = item["assets"][band]["href"].removeprefix("http://127.0.0.1:9/")
        originals[band] = str(small_archive.root / rel)
        item["assets"][band]["href"] = _without_georeferencing(
            originals[band], tmp_path / f"{band}.tif"
        )
    grid = OutputGrid(small_archive.epsg, 10.0, small_archive.bounds)
    expected = load_cube(
        [
            {
                **item,
                "assets": {
                    **item["assets"],
                    **{b: {**item["assets"][b], "href": originals[b]} for b in originals},
                },
            }
        ],
        ["red"],
        grid,
    )
    with dask.config.set(
        {"cubehub.gdal.GDAL_DISABLE_READDIR_ON_OPEN": "FALSE", "scheduler": "threads"}
    ):
        cube = load_cube([item], ["red"], grid)
        got, want = cube["red"].compute(), expected["red"].compute()
    assert (want.values > 0).mean() > 0.3
    np.testing.assert_array_equal(got.values, want.values)


# --- the default grid: anchored to the scenes where that avoids resampling ---------------


def _inside(item: dict[str, Any]) -> tuple[float, float, float, float]:
    west, south, _, _ = item["bbox"]
    return (west + 1.0, south + 0.5, west + 1.1, south + 0.6)


def test_landsat_at_its_own_crs_and_30_m_keeps_the_scenes_pixel_edges() -> None:
    items = pc_landsat()  # real Planetary Computer items: corners at 15 m mod 30 m
    transform = items[0]["properties"]["proj:transform"]
    assert (transform[2] % 30, transform[5] % 30) == (15.0, 15.0)
    cube = load_cube(items, ["red", "nir08"], bbox=_inside(items[0]), resolution=30.0)
    grid = cube_grid(cube)
    assert grid.epsg == items[0]["properties"]["proj:epsg"] and grid.anchor == (15.0, 15.0)
    xmin, _, _, ymax = grid.bounds
    assert ((xmin - transform[2]) % 30, (ymax - transform[5]) % 30) == (0.0, 0.0)
    # Asked for: multiples of 30 m (the grid before anchors), half a pixel off the scenes.
    edge = cube_grid(
        load_cube(items, ["red"], bbox=_inside(items[0]), resolution=30.0, anchor="edge")
    )
    assert edge.anchor == (0.0, 0.0) and (edge.bounds[0] - transform[2]) % 30 == 15.0


def test_in_another_crs_or_resolution_auto_is_edge_and_an_explicit_anchor_applies() -> None:
    items = pc_landsat()
    box = _inside(items[0])
    assert cube_grid(load_cube(items, ["red"], bbox=box, resolution=30.0, epsg=3035)).anchor == (
        0.0,
        0.0,
    )
    assert cube_grid(load_cube(items, ["red"], bbox=box, resolution=20.0)).anchor == (0.0, 0.0)
    laea = load_cube(items, ["red"], bbox=box, resolution=30.0, epsg=3035, anchor=(10.0, 20.0))
    assert cube_grid(laea).anchor == (10.0, 20.0)


def test_a_sentinel_2_grid_is_unchanged_by_auto(earth_search_items: list[dict[str, Any]]) -> None:
    # Sentinel-2 tile corners are multiples of 60 m: their own grid is the "edge" grid.
    corners = {
        (a["proj:transform"][2] % 60, a["proj:transform"][5] % 60)
        for item in earth_search_items
        for a in item["assets"].values()
        if "proj:transform" in a
    }
    assert corners == {(0.0, 0.0)}
    box = (15.60, 47.00, 15.70, 47.07)
    for resolution in (10.0, 20.0):
        cube = load_cube(earth_search_items, BANDS, bbox=box, resolution=resolution)
        assert cube_grid(cube) == grid_for_bbox(box, 32633, resolution, anchor="edge")
