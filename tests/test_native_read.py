"""Native reads: a file on the output grid is read without warping, DN for DN.

Real COGs written here with rasterio (Landsat's layout: 30 m, EPSG:32613, pixel edges at
15 m mod 30 m), served over HTTP with range requests, so GDAL reads them through
``/vsicurl`` as in the cloud.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import dask
import numpy as np
import pytest
import rasterio
from distributed import Client
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import Window
from stackstac.raster_spec import RasterSpec

from cubehub.cube import cube_grid, gdal_env, load_cube
from cubehub.demo.servers import FileServer, serve_files
from cubehub.grid import OutputGrid
from cubehub.reader import reader_for
from realdata import earth_search_same_place

EPSG = 32613
RES = 30.0
#: The upper-left corner of the files: a real Landsat scene's (449085, 4581915) moved
#: 3000 pixels in, so still at 15 m mod 30 m.
X0, Y1 = 449_085.0 + 90_000.0, 4_581_915.0 - 90_000.0
ROWS, COLS = 200, 160
BANDS = ["red", "nir08"]
FILES = {"red": 0, "nir08": 0, "qa_pixel": 1}  # asset -> the file's nodata value


def _write_cog(path: Path, seed: int, nodata: int) -> None:
    rng = np.random.default_rng(seed)
    data = rng.integers(2, 60_000, (ROWS, COLS), dtype=np.uint16)
    data[rng.random((ROWS, COLS)) < 0.1] = nodata  # a tenth nodata, as at a scene edge
    data[:, :7] = nodata
    profile = {
        "driver": "COG",
        "width": COLS,
        "height": ROWS,
        "count": 1,
        "dtype": "uint16",
        "crs": f"EPSG:{EPSG}",
        "transform": from_origin(X0, Y1, RES, RES),
        "nodata": nodata,
        "blocksize": 128,
        "compress": "DEFLATE",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _bounds() -> tuple[float, float, float, float]:
    return X0, Y1 - ROWS * RES, X0 + COLS * RES, Y1


def _lonlat(bounds: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    west, south, east, north = Transformer.from_crs(EPSG, 4326, always_xy=True).transform_bounds(
        *bounds
    )
    return west, south, east, north


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FileServer, Path]]:
    root = tmp_path_factory.mktemp("native")
    for k, (asset, nodata) in enumerate(FILES.items()):
        _write_cog(root / f"{asset}.tif", seed=k, nodata=nodata)
    with serve_files(root) as files:
        yield files, root


def _item(base: str) -> dict[str, Any]:
    """A real Earth Search landsat-c2-l2 item, its grid and hrefs those of the files here."""
    item = copy.deepcopy(earth_search_same_place()["landsat-c2-l2"])
    item["properties"]["proj:shape"] = [ROWS, COLS]
    item["properties"]["proj:transform"] = [RES, 0.0, X0, 0.0, -RES, Y1]
    west, south, east, north = _lonlat(_bounds())
    item["bbox"] = [west, south, east, north]
    item["geometry"] = {
        "type": "Polygon",
        "coordinates": [
            [[west, south], [east, south], [east, north], [west, north], [west, south]]
        ],
    }
    for asset in FILES:
        item["assets"][asset]["href"] = f"{base}/{asset}.tif"
    return item


def _file(root: Path, asset: str) -> np.ndarray:
    with rasterio.open(root / f"{asset}.tif") as src:
        data: np.ndarray = src.read(1)
        return np.where(data == FILES[asset], 0, data)  # the cube's nodata is 0


def _read(items: list[dict[str, Any]], bands: list[str], native: bool = True, **kw: Any) -> Any:
    """The cube of ``items`` read on the threaded scheduler; ``native=False`` warps every
    file (the setting is read when the cube is built, like every reader option)."""
    with dask.config.set({"scheduler": "threads", "cubehub.read.native": native}):
        return load_cube(items, bands, **kw).compute()


def test_reading_a_scene_at_its_own_crs_and_resolution_reproduces_its_dns(
    scene: tuple[FileServer, Path], caplog: pytest.LogCaptureFixture
) -> None:
    files, root = scene
    grid = OutputGrid(EPSG, RES, _bounds())
    with caplog.at_level(logging.DEBUG, logger="cubehub.reader"):
        cube = _read([_item(files.url)], BANDS, grid=grid, chunk_size=64)
    for asset in (*BANDS, "qa_pixel"):
        got = cube[asset].isel(time=0).values
        np.testing.assert_array_equal(got, _file(root, asset))
        assert got.dtype == np.uint16 and (got == 0).mean() > 0.1  # the nodata is there
    messages = [r.getMessage() for r in caplog.records]
    native = {
        m.split()[3].rsplit("/", 1)[1].rstrip(":") for m in messages if m.startswith("native read")
    }
    assert native == {"red.tif", "nir08.tif", "qa_pixel.tif"}
    assert not [m for m in messages if m.startswith("warped read")]
    assert files.stats.range_requests > 0, "read with range requests"


def test_the_default_grid_is_the_scenes_and_a_window_outside_the_file_is_nodata(
    scene: tuple[FileServer, Path], caplog: pytest.LogCaptureFixture
) -> None:
    files, root = scene
    # A box over the file's south-east corner: most of the grid lies outside the file.
    xmin, ymin, xmax, ymax = _bounds()
    box = _lonlat((xmax - 50 * RES, ymin - 70 * RES, xmax + 60 * RES, ymin + 40 * RES))
    with caplog.at_level(logging.DEBUG, logger="cubehub.reader"):
        cube = _read([_item(files.url)], ["red"], bbox=box, resolution=RES, chunk_size=32)
        grid = cube_grid(cube)
        assert grid.anchor == (15.0, 15.0), "anchor auto: the scene's own grid"
        red = cube["red"].isel(time=0).values
    assert [r for r in caplog.records if r.getMessage().startswith("native read")]
    warped = _read([_item(files.url)], ["red"], False, grid=grid, chunk_size=32)["red"]
    np.testing.assert_array_equal(red, warped.isel(time=0).values)
    # Where the grid meets the file: its DNs; elsewhere nodata.
    col0 = round((grid.bounds[0] - xmin) / RES)
    row0 = round((ymax - grid.bounds[3]) / RES)
    truth = np.zeros_like(red)
    file = _file(root, "red")
    rows, cols = red.shape
    r_lo, c_lo = max(row0, 0), max(col0, 0)
    r_hi, c_hi = min(row0 + rows, ROWS), min(col0 + cols, COLS)
    truth[r_lo - row0 : r_hi - row0, c_lo - col0 : c_hi - col0] = file[r_lo:r_hi, c_lo:c_hi]
    assert 0 < r_hi - r_lo < rows and 0 < c_hi - c_lo < cols, "partly outside, both ways"
    np.testing.assert_array_equal(red, truth)


def test_the_native_path_gives_the_warped_paths_dns_on_the_same_grid(
    scene: tuple[FileServer, Path], caplog: pytest.LogCaptureFixture
) -> None:
    files, _ = scene
    xmin, ymin, xmax, ymax = _bounds()
    # A grid on the file's pixels but not its extent, so stackstac warps it (no shortcut).
    grid = OutputGrid(EPSG, RES, (xmin + 10 * RES, ymin - 5 * RES, xmax - 3 * RES, ymax - 20 * RES))
    items = [_item(files.url)]
    with caplog.at_level(logging.DEBUG, logger="cubehub.reader"):
        native = _read(items, BANDS, True, grid=grid, chunk_size=64)
        assert [r for r in caplog.records if r.getMessage().startswith("native read")]
        caplog.clear()
        warped = _read(items, BANDS, False, grid=grid, chunk_size=64)
        assert not [r for r in caplog.records if r.getMessage().startswith("native read")]
    for band in (*BANDS, "qa_pixel"):
        assert (native[band].values > 0).mean() > 0.5
        np.testing.assert_array_equal(native[band].values, warped[band].values)


def test_a_file_off_the_grid_is_warped(
    scene: tuple[FileServer, Path], caplog: pytest.LogCaptureFixture
) -> None:
    files, _ = scene
    xmin, ymin, xmax, ymax = _bounds()
    off = OutputGrid(EPSG, RES, (xmin + 15, ymin + 15, xmax - 15, ymax - 15))  # half a pixel
    with caplog.at_level(logging.DEBUG, logger="cubehub.reader"):
        red = _read([_item(files.url)], ["red"], grid=off)["red"].values
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("warped read") and "0.5 px off" in m for m in messages), messages
    assert not any(m.startswith("native read") for m in messages)
    assert (red > 0).mean() > 0.5


def test_dataset_handles_are_kept_per_thread_across_tasks(
    scene: tuple[FileServer, Path], caplog: pytest.LogCaptureFixture
) -> None:
    files, root = scene
    spec = RasterSpec(epsg=EPSG, bounds=_bounds(), resolutions_xy=(RES, RES))
    reader = reader_for()(
        url=f"{files.url}/red.tif",
        spec=spec,
        resampling=Resampling.nearest,
        dtype=np.dtype("uint16"),
        fill_value=np.uint16(0),
        scale_offset=(1, 0),
        gdal_env=gdal_env(),
    )
    want = _file(root, "red")
    with caplog.at_level(logging.DEBUG, logger="cubehub.reader"):
        # A distributed worker unpickles a fresh reader for every task: do as it does.
        for row in (0, 64, 128):
            task_reader = cloudpickle.loads(cloudpickle.dumps(reader))
            got = task_reader.read(Window(0, row, 64, 64))
            np.testing.assert_array_equal(got, want[row : row + 64, :64])
    opened = [r.getMessage() for r in caplog.records if r.getMessage().startswith("opened")]
    assert len(opened) <= 1, opened


def test_native_reads_on_worker_processes(
    scene: tuple[FileServer, Path], local_client: Client
) -> None:
    files, root = scene
    grid = OutputGrid(EPSG, RES, _bounds())
    cube = load_cube([_item(files.url)], BANDS, grid, chunk_size=64)
    red = local_client.compute(cube["red"]).result()
    np.testing.assert_array_equal(red.isel(time=0).values, _file(root, "red"))


def test_a_file_with_a_mask_band_instead_of_nodata_reads_as_the_warped_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The native read replaces a file's nodata value itself; a file whose missing pixels are
    # in a mask band (no nodata value) still needs GDAL's mask, as the warped read has it.
    for k, (asset, nodata) in enumerate(FILES.items()):
        _write_cog(tmp_path / f"{asset}.tif", seed=k, nodata=nodata)
    rng = np.random.default_rng(7)
    data = rng.integers(2, 60_000, (ROWS, COLS), dtype=np.uint16)
    valid = rng.random((ROWS, COLS)) > 0.2
    with rasterio.open(
        tmp_path / "red.tif", "w", driver="GTiff", width=COLS, height=ROWS, count=1,
        dtype="uint16", crs=f"EPSG:{EPSG}", transform=from_origin(X0, Y1, RES, RES),
        tiled=True, blockxsize=128, blockysize=128,
    ) as dst:  # fmt: skip
        dst.write(data, 1)
        dst.write_mask(valid)
    xmin, ymin, xmax, ymax = _bounds()
    grid = OutputGrid(EPSG, RES, (xmin + 10 * RES, ymin + 5 * RES, xmax - 3 * RES, ymax - 20 * RES))
    items = [_item(str(tmp_path))]
    with caplog.at_level(logging.DEBUG, logger="cubehub.reader"):
        native = _read(items, ["red"], True, grid=grid, chunk_size=64)["red"].isel(time=0).values
    assert any(
        r.getMessage().startswith("native read") and "red.tif" in r.getMessage()
        for r in caplog.records
    )
    warped = _read(items, ["red"], False, grid=grid, chunk_size=64)["red"].isel(time=0).values
    np.testing.assert_array_equal(native, warped)
    # The grid starts 20 rows down and 10 columns in: the mask's missing pixels are 0.
    inner = valid[20 : 20 + native.shape[0], 10 : 10 + native.shape[1]]
    np.testing.assert_array_equal(native == 0, ~inner)


def test_reads_are_chunked_on_the_files_tiles_and_the_cube_on_regular_chunks(
    scene: tuple[FileServer, Path],
) -> None:
    """A grid 10 px right of and 20 px below the files' corner: the read chunks' edges lie
    on the files' 64 px tile rows and columns (each tile decoded once), the cube's on 64 px
    from its own corner; both read the same DNs."""
    from cubehub.catalog.items import normalize_items
    from cubehub.cube import _read_chunks  # the rule itself: its chunks are not in the cube

    files, root = scene
    xmin, ymin, xmax, ymax = _bounds()
    grid = OutputGrid(EPSG, RES, (xmin + 10 * RES, ymin, xmax, ymax - 20 * RES))
    items = normalize_items([_item(files.url)], bands=BANDS).items
    chunks = _read_chunks(items, grid, 64, 3, native=True)
    # File row 20 + 44 = 64 and column 10 + 54 = 64; the last 8 rows join their neighbour.
    assert chunks == (1, 3, (44, 64, 72), (54, 64, 32))
    assert _read_chunks(items, grid, 64, 3, native=False) == (1, 3, 64, 64)
    cube = load_cube(items, BANDS, grid=grid, chunk_size=64)
    assert cube["red"].data.chunks[1:] == ((64, 64, 52), (64, 64, 22))
    with dask.config.set(scheduler="threads"):
        red = cube["red"].values
    np.testing.assert_array_equal(red[0], _file(root, "red")[20:, 10:])
