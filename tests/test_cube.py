"""The cube layer: output grids, harmonised DNs, budgets and bad input, before any pixel is read."""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
import pytest

from cubehub.cube import OutputGrid, grid_for_bbox, load_cube
from cubehub.errors import InputError
from cubehub.testing.catalog import synthetic_items, tile_bbox_lonlat
from cubehub.testing.servers import serve_files

BANDS = ["red", "nir"]


def test_grid_bounds_snap_outward_to_the_pixel_grid() -> None:
    grid = grid_for_bbox((15.60, 47.00, 15.70, 47.07), 3035, 30.0)
    assert all(v % 30 == 0 for v in grid.bounds)
    rows, cols = grid.shape
    assert 200 < rows < 400 and 200 < cols < 400


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"resolution": 0}, "resolution must be a positive"),
    ({"resolution": -10}, "resolution must be a positive"),
    ({"epsg": 999999}, "EPSG:999999 is not a CRS"),
    ({"resolution": 0.001}, "above the limit"),
])
def test_bad_grids(kwargs: dict, message: str) -> None:
    args = {"bbox_lonlat": (15.6, 47.0, 15.7, 47.1), "epsg": 32633, "resolution": 10.0} | kwargs
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
    assert cube.data.dtype == np.uint16
    budget = cube.budget()
    assert budget.items == cube.data.sizes["time"] == 100  # only tile 0's items meet the box
    assert budget.bytes_decoded == 100 * 3 * cube.grid.shape[0] * cube.grid.shape[1] * 2
    assert 0 < budget.tasks < 50_000
    # Post-2022-01-25 items say offset -0.1 but boa_offset_applied: their DNs need no shift.
    assert cube.offset == {"red": 0.0, "nir": 0.0} and cube.scale == {"red": 1e-4, "nir": 1e-4}


def test_cube_in_laea_europe_reads_the_archive_through_http(small_archive: Any) -> None:
    with serve_files(small_archive.root) as files:
        items = small_archive.item_dicts(files.url)[:8]
        cube = load_cube(items, BANDS, epsg=3035, resolution=20.0, bbox=small_archive.bbox_lonlat())
        assert cube.grid.epsg == 3035 and int(cube.data.coords["epsg"]) == 3035
        with dask.config.set(scheduler="threads"):
            red = cube.data.sel(band="red").compute().values
    truth = small_archive.truth()["red"].isel(time=slice(0, 8)).load()
    assert red.shape[0] == 8 and (red > 0).mean() > 0.3
    # Reprojected with nearest neighbour: the values present are DNs of the archive.
    dn = np.unique(red[red > 0])
    assert dn.min() >= 1 and dn.max() <= 10_000 + 1000 + 300
    assert float(truth.max()) > 0


def test_explicit_grid_is_used_as_given(small_archive: Any) -> None:
    grid = OutputGrid(small_archive.epsg, 10.0, small_archive.bounds)
    cube = load_cube(small_archive.item_dicts("http://127.0.0.1:9"), BANDS, grid)
    assert cube.data.sizes["y"] == cube.data.sizes["x"] == 64
    assert float(cube.data.x[0]) == small_archive.bounds[0] + 5.0
