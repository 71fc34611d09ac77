"""The store's protocol on synthetic composites: template first, records, resume, mismatch,
appending seasons, alignment, GIS metadata, ODSE names and STAC records. No cluster."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr
from pystac.extensions.datacube import DatacubeExtension

from cubehub.errors import InputError, OutputLocationError, StoreMismatchError
from cubehub.output.encoding import encode_composite, odse_layers
from cubehub.output.layout import MARKER
from cubehub.output.open import open_composite
from cubehub.output.stac_records import stac_location
from cubehub.output.storage import check_writable
from cubehub.output.zarr_store import CompositeStore
from cubehub.pipeline import template
from cubehub.testing.store_contract import (
    CHUNK,
    TILE,
    grid_of,
    synthetic_composite,
    write_tile,
)
from cubehub.tiles import Tile, split_grid

X0, Y1 = 560_000.0, 5_230_000.0
composite = synthetic_composite


def create(url: Path | str, ds: xr.Dataset, **kwargs: Any) -> Any:
    grid = grid_of(ds)
    tiles = split_grid(grid, TILE, CHUNK)
    tmpl = template(ds.isel(y=slice(0, TILE), x=slice(0, TILE)), grid, CHUNK)
    return CompositeStore.open_or_create(str(url), tmpl, tiles, **kwargs), tiles


def write(store: Any, ds: xr.Dataset, tile: Tile, *, mark: bool = True) -> dict[str, Any]:
    return dict(write_tile(store, ds, tile, mark=mark))


def raw(url: Path | str) -> xr.Dataset:
    ds: xr.Dataset = xr.open_zarr(str(url), mask_and_scale=False)
    return ds


def expected_raw(ds: xr.Dataset, name: str) -> np.ndarray:
    return xr.conventions.encode_cf_variable(ds[name].variable, name=name).values


def files_state(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under root: to see what a step rewrote."""
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            st = os.stat(os.path.join(folder, name))
            out[os.path.relpath(os.path.join(folder, name), root)] = (st.st_size, st.st_mtime_ns)
    return out


def chunk_files(root: Path, variable: str) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in (root / variable).rglob("*")
        if p.is_file() and p.name not in ("zarr.json", ".zarray", ".zattrs")
    )


@pytest.fixture
def ds() -> xr.Dataset:
    return composite()


def test_template_first_writes_metadata_only_and_readers_see_nothing(
    tmp_path: Path, ds: xr.Dataset
) -> None:
    url = tmp_path / "c.zarr"
    store, tiles = create(url, ds)
    assert len(tiles) == 4
    assert chunk_files(url, "red") == [] and chunk_files(url, "valid_count") == []
    assert json.loads((url / MARKER).read_text())["state"] == "ready"
    assert (Path(stac_location(str(url))) / "item.json").is_file()
    out = open_composite(str(url))
    assert not out["complete"].any()
    assert out["red"].isnull().all() and out["valid_count"].isnull().all()  # no "0 observations"
    assert store.completed_tiles() == set()


def test_a_tile_shows_only_once_recorded_complete(tmp_path: Path, ds: xr.Dataset) -> None:
    url = tmp_path / "c.zarr"
    store, tiles = create(url, ds)
    written = write(store, ds, tiles[0], mark=False)
    assert written["seasons"] == [str(s) for s in ds.season.values]
    region = {"y": slice(*tiles[0].y), "x": slice(*tiles[0].x)}
    assert open_composite(str(url))["nir"].isel(region).isnull().all()  # written, not recorded
    unmasked = open_composite(str(url), complete_only=False)["nir"].isel(region)
    assert unmasked.notnull().any()
    store.mark_complete(tiles[0])
    assert store.completed_tiles() == {tiles[0].id}
    out = open_composite(str(url))
    assert (
        bool(out["complete"].isel(region).all())
        and not out["complete"].isel(y=slice(TILE, None)).any()
    )
    for name in ("red", "nir", "NDVI", "valid_count"):
        got = raw(url)[name].isel(region).values
        np.testing.assert_array_equal(got, expected_raw(ds, name)[..., :TILE, :TILE], err_msg=name)
    assert out["red"].isel(y=slice(TILE, None)).isnull().all()


def test_reopening_resumes_and_skips_complete_tiles(tmp_path: Path, ds: xr.Dataset) -> None:
    url = tmp_path / "c.zarr"
    store, tiles = create(url, ds)
    write(store, ds, tiles[0])
    write(store, ds, tiles[3])
    again, _ = create(url, ds)
    assert again.completed_tiles() == {tiles[0].id, tiles[3].id}
    before = files_state(url)
    for tile in tiles[1:3]:
        write(again, ds, tile)
    after = files_state(url)
    changed = {p for p in after if before.get(p) != after[p]}
    untouched_tiles = {p for p in before if p.startswith("red/") and before[p] == after[p]}
    assert untouched_tiles and not any(p.startswith(("red/zarr.json",)) for p in changed)
    for name in ("red", "NDVI", "valid_count"):
        np.testing.assert_array_equal(raw(url)[name].values, expected_raw(ds, name), err_msg=name)
    assert again.completed_tiles() == {t.id for t in tiles}


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (lambda: composite(x0=X0 + 320.0), "grid differs"),
        (lambda: composite(epsg=32632), "CRS differs"),
        (lambda: composite(bands=("red", "nir", "blue")), "variables"),
        (lambda: composite(job={"method": "nearest", "min_count": 1}), "job parameter method"),
        (lambda: composite((2021,)), "do not follow its last season"),
    ],
    ids=["grid", "crs", "variables", "job-parameters", "earlier-seasons"],
)
def test_a_store_made_by_another_job_is_refused_and_left_alone(
    tmp_path: Path, ds: xr.Dataset, other: Any, message: str
) -> None:
    url = tmp_path / "c.zarr"
    store, tiles = create(url, ds)
    write(store, ds, tiles[0])
    before = files_state(url)
    with pytest.raises(StoreMismatchError, match=message) as info:
        create(url, other())
    assert "overwrite" in str(info.value)
    assert files_state(url) == before
    replaced, _ = create(url, other(), overwrite=True)
    assert replaced.completed_tiles() == set()


def test_a_folder_that_is_not_a_store_is_refused(tmp_path: Path, ds: xr.Dataset) -> None:
    url = tmp_path / "mine"
    url.mkdir()
    (url / "thesis.tex").write_text("precious")
    with pytest.raises(StoreMismatchError, match="not a cubehub store"):
        create(url, ds)
    assert (url / "thesis.tex").read_text() == "precious"


def test_an_abandoned_creation_is_redone_a_live_one_waited_for(
    tmp_path: Path, ds: xr.Dataset
) -> None:
    url = tmp_path / "c.zarr"
    url.mkdir()
    marker = {
        "state": "creating",
        "host": os.uname().nodename,
        "pid": os.getpid(),
        "time": time.time(),
        "tiles": {},
    }
    (url / MARKER).write_text(json.dumps(marker))
    with pytest.raises(OutputLocationError, match="being created by process"):
        create(url, ds, wait_s=0.3)
    (url / MARKER).write_text(json.dumps({**marker, "pid": 2**22 + 12345}))  # no such process
    store, _ = create(url, ds)
    assert json.loads((url / MARKER).read_text())["state"] == "ready"
    assert store.completed_tiles() == set()


def test_appending_a_year_rewrites_nothing_that_is_there(tmp_path: Path) -> None:
    url = tmp_path / "c.zarr"
    y2022, both = composite((2022,)), composite((2022, 2023), seed=1)
    store, tiles = create(url, y2022)
    for tile in tiles:
        write(store, y2022, tile)
    before = files_state(url)
    grown, _ = create(url, both)
    assert raw(url).sizes["season"] == 8
    after_append = files_state(url)
    old_chunks = [p for v in ("red", "NDVI", "valid_count") for p in chunk_files(url, v)]
    assert old_chunks and all(after_append[p] == before[p] for p in old_chunks)
    assert grown.completed_tiles() == set()  # no tile is complete in 2023 yet
    written = write(grown, both, tiles[0])
    assert written["seasons"] == [str(s) for s in both.season.values[4:]]
    for tile in tiles[1:]:
        write(grown, both, tile)
    final = files_state(url)
    assert all(final[p] == before[p] for p in old_chunks)
    stored = raw(url)
    np.testing.assert_array_equal(stored["red"].values[:4], expected_raw(y2022, "red"))
    np.testing.assert_array_equal(stored["red"].values[4:], expected_raw(both, "red")[4:])
    assert str(stored.season_start.values[4])[:10] == "2022-12-02"
    assert grown.completed_tiles() == {t.id for t in tiles}
    item = json.loads((Path(stac_location(str(url))) / "item.json").read_text())
    assert len(item["properties"]["cube:dimensions"]["season"]["values"]) == 8


def test_misaligned_regions_are_refused_before_writing(tmp_path: Path, ds: xr.Dataset) -> None:
    url = tmp_path / "c.zarr"
    store, _ = create(url, ds)
    shifted = Tile(0, 0, (8, 40), (0, 32))
    with pytest.raises(InputError, match="chunk edges"):
        store.write_tile(ds.isel(y=slice(8, 40), x=slice(0, 32)), shifted)
    rechunked = ds.isel(y=slice(0, 32), x=slice(0, 32)).chunk({"y": 8})
    rechunked["red"].encoding = ds["red"].encoding
    with pytest.raises(InputError, match="chunk edges"):
        store.write_tile(rechunked, Tile(0, 0, (0, 32), (0, 32)))
    grid = grid_of(ds)
    with pytest.raises(InputError, match="chunk edges"):
        CompositeStore.open_or_create(
            str(tmp_path / "d.zarr"),
            template(ds.isel(y=slice(0, 32), x=slice(0, 32)), grid, CHUNK),
            [Tile(0, 0, (0, 24), (0, 64)), Tile(1, 0, (24, 64), (0, 64))],
        )
    assert chunk_files(url, "red") == []


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_gis_readers_see_crs_grid_and_encoding(
    tmp_path: Path, ds: xr.Dataset, zarr_format: int
) -> None:
    url = tmp_path / f"c{zarr_format}.zarr"
    store, tiles = create(url, ds, zarr_format=zarr_format)
    for tile in tiles:
        write(store, ds, tile)
    assert (url / ("zarr.json" if zarr_format == 3 else ".zmetadata")).is_file()
    out = open_composite(str(url))
    assert out["red"].rio.crs.to_epsg() == 32633
    assert out["red"].rio.transform() == rasterio.Affine(10.0, 0.0, X0, 0.0, -10.0, Y1)
    assert out["red"].encoding["grid_mapping"] == "spatial_ref"
    assert out.red.attrs["units"] == "1" and "reflectance" in out.red.attrs["long_name"]
    assert out.percentile.attrs["units"] == "percent"
    stored = raw(url)
    assert stored["red"].dtype == np.uint16 and stored["red"].attrs["scale_factor"] == 1e-4
    assert stored["red"].encoding["chunks"] == (1, 3, CHUNK, CHUNK)
    np.testing.assert_allclose(out["red"].values, ds["red"].values, atol=0.5e-4 + 1e-7, rtol=0)
    if zarr_format == 2:  # GDAL <= 3.10 reads only format 2 (it lacks the format 3 "bytes" codec)
        with rasterio.open(f'ZARR:"{url}":/red:0:1') as src:
            assert src.crs.to_epsg() == 32633
            assert src.transform == rasterio.Affine(10.0, 0.0, X0, 0.0, -10.0, Y1)
            assert src.read(1).dtype == np.uint16


def test_odse_layer_names(tmp_path: Path, ds: xr.Dataset) -> None:
    layers = odse_layers(ds)
    assert "red_p50_2021.12.02..2022.03.20" in layers
    assert "nir_p75_2022.09.13..2022.12.01" in layers
    assert "valid_count_2022.06.25..2022.09.12" in layers
    assert len(layers.data_vars) == 4 * (3 * 3 + 1)
    np.testing.assert_array_equal(
        layers["red_p25_2022.03.21..2022.06.24"].values,
        ds["red"].sel(season="2022-spring", percentile=25.0).values,
    )
    url = tmp_path / "c.zarr"
    create(url, ds)
    assert "NDVI_p50_2022.06.25..2022.09.12" in open_composite(str(url), layout="odse")


def test_stac_records_describe_the_store(tmp_path: Path, ds: xr.Dataset) -> None:
    url = tmp_path / "c.zarr"
    store, tiles = create(url, ds)
    write(store, ds, tiles[1])
    store.finish()
    folder = Path(stac_location(str(url)))
    collection = pystac.Collection.from_file(str(folder / "collection.json"))
    item = pystac.Item.from_file(str(folder / "item.json"))
    assert item.collection_id == collection.id
    assert item.assets["data"].href == str(url)
    assert item.assets["data"].media_type == "application/vnd.zarr; version=2"
    cube = DatacubeExtension.ext(item)
    assert cube.dimensions is not None and cube.variables is not None
    assert set(cube.dimensions) == {"x", "y", "season", "percentile"}
    assert cube.dimensions["x"].properties["reference_system"] == 32633
    assert set(cube.variables) >= {"red", "nir", "NDVI", "valid_count"}
    assert item.properties["proj:code"] == "EPSG:32633"
    assert item.properties["start_datetime"].startswith("2021-12-02")
    assert item.properties["cubehub:tiles_complete"]["2022-winter"] == 1
    assert item.bbox is not None
    west, south, east, north = item.bbox
    assert 15.7 < west < east < 15.9 and 47.1 < south < north < 47.3
    links = {link.rel for link in item.links}
    assert {"collection", "self"} <= links


def test_wild_index_values_are_clipped_not_wrapped(tmp_path: Path) -> None:
    ds = composite()
    ds["NDVI"] = ds["NDVI"] * 0 + 7.5  # e.g. an unbounded index
    ds = encode_composite(
        ds.drop_vars("NDVI").assign(NDVI=ds["NDVI"]), {"red": (1e-4, -0.1), "nir": (1e-4, -0.1)}
    )
    url = tmp_path / "c.zarr"
    store, tiles = create(url, ds)
    write(store, ds, tiles[0])
    assert float(open_composite(str(url))["NDVI"].isel(y=0, x=0).max()) == pytest.approx(3.2767)


def test_check_writable_refuses_unwritable_and_taken_locations(tmp_path: Path) -> None:
    with pytest.raises(OutputLocationError, match="not writable"):
        check_writable("/proc/cubehub-cannot-write/c.zarr")
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(OutputLocationError, match=r"not a writable folder|is a file"):
        check_writable(str(afile / "c.zarr"))
    with pytest.raises(InputError, match="already exists"):
        check_writable(str(tmp_path))
    check_writable(str(tmp_path / "new" / "c.zarr"))
    assert not (tmp_path / "new").exists()


def test_completion_mask_follows_tiles_on_uneven_grids() -> None:
    from cubehub.output.completion import Completion, TileLayout, completion_mask

    layout = TileLayout({"r0000c0000": (0, 32, 0, 32), "r0000c0001": (0, 32, 32, 50)})
    done = Completion({"winter": {"r0000c0001"}, "spring": {"r0000c0000", "r0000c0001"}})
    mask = completion_mask(done, layout, ["winter", "spring", "summer"], (32, 50), (16, 16))
    assert mask.chunks == ((1, 1, 1), (16, 16), (16, 16, 16, 2))
    values = mask.compute()
    assert not values[0, :, :32].any() and values[0, :, 32:].all()
    assert values[1].all() and not values[2].any()
