"""``cubehub export``: a real composite store as ODSE-named COGs and a STAC Collection.

Every COG is checked with GDAL's own COG rules (:mod:`cubehub.testing.cog`; rio-cogeo and
GDAL's Python bindings are not in the environment) and read back with rasterio: the store's
integers exactly, its CRS, transform, nodata, scale/offset and unit.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr
from click.testing import CliRunner
from distributed import Client
from pystac.validation import validate_dict
from rasterio.transform import Affine

from cubehub.cli import main
from cubehub.errors import CubehubWarning, InputError, OutputLocationError
from cubehub.jobspec import make_job
from cubehub.output.cog import CogLayer, write_cogs
from cubehub.output.cog_names import PATTERN, default_fields, layer_file_name, parse_file_name
from cubehub.output.export import export_cogs
from cubehub.output.export_plan import plan_export
from cubehub.output.open import open_composite, open_store
from cubehub.pipeline import run_job, template
from cubehub.seasons import odse_span
from cubehub.testing.cog import cog_problems
from cubehub.testing.store_contract import CHUNK, TILE, grid_of, synthetic_composite, write_tile
from cubehub.tiles import split_grid

ODSE_BANDS = ("blue", "green", "red", "nir", "swir1", "swir2", "thermal")


@pytest.fixture(scope="module")
def job_store(
    store_job_fields: dict[str, Any], local_client: Client, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The shared 4-tile job (red, nir, NDVI, 2022), run to its end: a Zarr format 2 store."""
    url = tmp_path_factory.mktemp("export-src") / "graz-2022.zarr"
    result = run_job(
        make_job(**store_job_fields, output=str(url)), local_client, show_progress=False
    )
    assert len(result.tiles_written) == 4
    return url


@pytest.fixture(scope="module")
def exported(job_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("export") / "cogs"
    steps: list[tuple[int, int]] = []
    result = export_cogs(
        str(job_store), folder, progress=lambda done, total, name: steps.append((done, total))
    )
    return {"result": result, "folder": folder, "steps": steps}


def _synthetic_store(
    url: str, bands: tuple[str, ...], *, kind: str = "zarr", marked: int = 4
) -> None:
    """A synthetic composite written by the store code, tile by tile; the first ``marked``
    tiles recorded complete, the others written but never recorded."""
    ds = synthetic_composite(bands=bands)
    grid = grid_of(ds)
    tiles = split_grid(grid, TILE, CHUNK)
    tmpl = template(ds.isel(y=slice(0, TILE), x=slice(0, TILE)), grid, CHUNK)
    store = open_store(url, tmpl, tiles, store_kind=kind)  # type: ignore[arg-type]
    for k, tile in enumerate(tiles):
        write_tile(store, ds, tile, mark=k < marked)
    store.finish()


def test_every_cog_is_valid_and_holds_the_stored_integers_exactly(
    job_store: Path, exported: dict[str, Any]
) -> None:
    raw = xr.open_zarr(job_store, mask_and_scale=False, decode_coords="all")
    decoded = open_composite(str(job_store))
    files = exported["result"].files
    assert len(files) == 4 * (3 * 3 + 1)  # seasons x (red, nir, NDVI at 3 percentiles + count)
    x0, y1 = float(raw.x[0]) - 5.0, float(raw.y[0]) + 5.0
    for path in files:
        assert cog_problems(path) == [], path.name
        with rasterio.open(path) as src:
            tags = src.tags()
            name, season = tags["variable"], tags["season"]
            stored = raw[name].sel(season=season)
            if "percentile" in stored.dims:
                stored = stored.sel(percentile=float(tags["percentile"]))
            assert src.crs.to_epsg() == 32633
            assert src.transform == Affine(10.0, 0.0, x0, 0.0, -10.0, y1)
            assert src.dtypes[0] == str(stored.dtype)
            assert src.nodata == float(stored.attrs["_FillValue"])
            assert src.scales[0] == float(stored.attrs.get("scale_factor", 1.0))
            assert src.offsets[0] == float(stored.attrs.get("add_offset", 0.0))
            assert src.units[0] == stored.attrs["units"]
            assert src.block_shapes[0] == (128, 128)  # one tile, GDAL's smallest, not 512 px
            dn = src.read(1)
            np.testing.assert_array_equal(dn, stored.values)
            # DN x scale + offset is the store's decoded value, nodata where it is NaN.
            value = decoded[name].sel(season=season)
            if "percentile" in value.dims:
                value = value.sel(percentile=float(tags["percentile"]))
            valid = dn != src.nodata
            np.testing.assert_array_equal(valid, np.isfinite(value.values))
            np.testing.assert_allclose(
                dn[valid] * src.scales[0] + src.offsets[0], value.values[valid], rtol=0, atol=1e-6
            )
            assert tags["season_start"] == str(raw["season_start"].sel(season=season).values)[:10]
            assert tags["source_collection"] == "sentinel-2-l2a"
            assert json.loads(tags["cubehub_job"])["bands"] == ["red", "nir"]
            assert name in src.descriptions[0] or tags["long_name"] in src.descriptions[0]


def test_file_names_follow_the_documented_pattern(
    job_store: Path, exported: dict[str, Any]
) -> None:
    raw = xr.open_zarr(job_store, decode_coords="all")
    spans = {
        odse_span(s, e)
        for s, e in zip(raw["season_start"].values, raw["season_end"].values, strict=True)
    }
    seen: dict[str, set[str]] = {}
    for path in exported["result"].files:
        fields = parse_file_name(path.name)
        assert (fields["theme"], fields["product"], fields["resolution"], fields["depth"]) == (
            "lcv",
            "sentinel.2.l2a",
            "10m",
            "0..0cm",
        )
        assert (fields["area"], fields["epsg"]) == ("graz.2022", "epsg32633")
        major, minor = str(raw.attrs["cubehub_version"]).split(".")[:2]
        assert fields["version"] == f"v{major}.{minor}"  # of the cubehub that wrote the store
        assert fields["time"] in spans
        seen.setdefault(fields["variable"], set()).add(fields["type"])
    assert seen == {
        "red": {"p25", "p50", "p75"},
        "nir": {"p25", "p50", "p75"},
        "ndvi": {"p25", "p50", "p75"},
        "valid.count": {"n"},
    }
    with pytest.raises(InputError, match="is not named"):
        parse_file_name("red_p50_2022.06.25..2022.09.12.tif")
    assert PATTERN.startswith("lcv_{variable}_{product}_{type}_{resolution}_0..0cm_")


def test_the_stac_collection_validates_and_its_hrefs_open(exported: dict[str, Any]) -> None:
    folder: Path = exported["folder"]
    collection_dict = json.loads((folder / "collection.json").read_text())
    # The core schemas ship with pystac; the extensions' would need the internet.
    validate_dict(collection_dict, extensions=[])
    collection = pystac.Collection.from_file(str(folder / "collection.json"))
    items = list(collection.get_items())
    assert [i.properties["cubehub:season"] for i in items] == [
        "2022-winter",
        "2022-spring",
        "2022-summer",
        "2022-autumn",
    ]
    files = {p.name for p in exported["result"].files}
    hrefs: set[str] = set()
    for item in items:
        validate_dict(item.to_dict(), extensions=[])
        assert item.properties["proj:code"] == "EPSG:32633"
        assert item.properties["proj:shape"] == [64, 64]
        assert item.properties["cubehub:tiles_incomplete"] == []
        assert any("projection" in e for e in item.stac_extensions)
        assert any("raster" in e for e in item.stac_extensions)
        for key, asset in item.assets.items():
            href = asset.get_absolute_href()
            assert href is not None and Path(href).name == f"{key}.tif"
            assert asset.href == f"../{key}.tif"  # relative: the folder can be moved
            assert (
                asset.media_type == pystac.MediaType.COG and asset.roles and "data" in asset.roles
            )
            (band,) = asset.extra_fields["raster:bands"]
            with rasterio.open(href) as src:
                assert band["nodata"] == src.nodata
                assert band["scale"] == src.scales[0] and band["offset"] == src.offsets[0]
                assert band["unit"] == src.units[0] and band["data_type"] == src.dtypes[0]
                assert src.tags()["season"] == item.properties["cubehub:season"]
            hrefs.add(Path(href).name)
    assert hrefs == files


def test_progress_counts_every_step_to_the_total(exported: dict[str, Any]) -> None:
    steps = exported["steps"]
    total = steps[-1][1]
    assert [d for d, _ in steps] == list(range(1, total + 1))
    assert total == 16 + 40  # one window per variable x season, one copy per COG


def test_an_odse_year_of_seven_bands_is_84_band_layers(tmp_path: Path) -> None:
    url = str(tmp_path / "eumap.zarr")
    _synthetic_store(url, ODSE_BANDS)
    result = export_cogs(
        url, tmp_path / "cogs", product="landsat.glad.ard", area="eumap", version="v1.1"
    )
    names = [parse_file_name(p.name) for p in result.files]
    bands = [n for n in names if n["variable"] in ODSE_BANDS]
    assert len(bands) == 84 == 7 * 3 * 4
    assert {(n["variable"], n["type"], n["time"]) for n in bands} == {
        (b, f"p{q}", t)
        for b in ODSE_BANDS
        for q in (25, 50, 75)
        for t in (
            "2021.12.02..2022.03.20",
            "2022.03.21..2022.06.24",
            "2022.06.25..2022.09.12",
            "2022.09.13..2022.12.01",
        )
    }
    assert len(result.files) == 84 + 12 + 4  # and NDVI at 3 percentiles, counts
    assert (
        "lcv_green_landsat.glad.ard_p50_10m_0..0cm_2022.06.25..2022.09.12_eumap_epsg32633_v1.1.tif"
        in {p.name for p in result.files}
    )
    items = list(pystac.Collection.from_file(str(result.collection)).get_items())
    assert [len(i.assets) for i in items] == [25, 25, 25, 25]  # 21 band layers, 3 NDVI, 1 count


def test_an_incomplete_store_is_refused_before_any_write(
    partial_store: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "cogs"
    with pytest.raises(InputError, match=r"r0001c0001.*--allow-incomplete"):
        export_cogs(partial_store["url"], folder)
    assert not folder.exists()


def test_allowed_incomplete_tiles_are_nodata_with_a_warning(tmp_path: Path) -> None:
    url = str(tmp_path / "partial.zarr")
    _synthetic_store(url, ("red", "nir"), marked=3)  # the last tile written, never recorded
    raw = xr.open_zarr(url, mask_and_scale=False)
    assert (raw["red"].values[..., 32:, 32:] != 0).any(), "its chunks hold data"
    with pytest.warns(CubehubWarning, match=r"1 tile\(s\).*exported as nodata.*r0001c0001"):
        result = export_cogs(url, tmp_path / "cogs", allow_incomplete=True)
    for path in result.files:
        with rasterio.open(path) as src:
            tags, dn = src.tags(), src.read(1)
            assert (dn[32:, 32:] == src.nodata).all(), path.name
            stored = raw[tags["variable"]].sel(season=tags["season"])
            if "percentile" in stored.dims:
                stored = stored.sel(percentile=float(tags["percentile"]))
            np.testing.assert_array_equal(dn[:32], stored.values[:32])
            np.testing.assert_array_equal(dn[:, :32], stored.values[:, :32])
            assert tags["incomplete_tiles"] == "r0001c0001"
    items = pystac.Collection.from_file(str(result.collection)).get_items()
    assert all(i.properties["cubehub:tiles_incomplete"] == ["r0001c0001"] for i in items)


def test_an_icechunk_repository_exports_the_same_integers(tmp_path: Path) -> None:
    url = str(tmp_path / "graz.icechunk")
    _synthetic_store(url, ("red",), kind="icechunk")
    result = export_cogs(url, tmp_path / "cogs")
    raw = open_composite(url)  # decoded, for the values
    path = next(
        p
        for p in result.files
        if "_red_" in p.name and "_p50_" in p.name and "2022.06.25" in p.name
    )
    assert parse_file_name(path.name)["area"] == "graz"
    with rasterio.open(path) as src:
        assert cog_problems(path) == []
        dn = src.read(1)
        expected = raw["red"].sel(season="2022-summer", percentile=50.0).values
        valid = dn != src.nodata
        np.testing.assert_array_equal(valid, np.isfinite(expected))
        np.testing.assert_allclose(
            dn[valid] * src.scales[0] + src.offsets[0], expected[valid], atol=1e-7
        )


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("what", "error", "match"),
    [
        ("missing", InputError, "no store at"),
        ("empty folder", InputError, "is not a Zarr store"),
        ("a file", InputError, "is not a Zarr store"),
        ("unwritable dir", OutputLocationError, "not writable"),
        ("dir is a file", OutputLocationError, "is not a folder"),
        ("bad product", InputError, "cannot be a field"),
        ("bad blocksize", InputError, "multiple of 16"),
    ],
)
def test_bad_input_fails_before_any_write(
    what: str, error: type[Exception], match: str, job_store: Path, tmp_path: Path
) -> None:
    store, folder = str(job_store), tmp_path / "cogs"
    kwargs: dict[str, Any] = {}
    if what == "missing":
        store = str(tmp_path / "nothing.zarr")
    elif what == "empty folder":
        (tmp_path / "empty.zarr").mkdir()
        store = str(tmp_path / "empty.zarr")
    elif what == "a file":
        (tmp_path / "x.tif").write_bytes(b"II*\x00")
        store = str(tmp_path / "x.tif")
    elif what == "unwritable dir":
        folder = Path("/proc/cubehub-cannot-write/cogs")
    elif what == "dir is a file":
        folder.write_text("not a folder")
    elif what == "bad product":
        kwargs = {"product": "landsat_glad"}
    elif what == "bad blocksize":
        kwargs = {"blocksize": 100}
    before = _files(tmp_path)
    with pytest.raises(error, match=match):
        export_cogs(store, folder, **kwargs)
    assert _files(tmp_path) == before
    assert what == "dir is a file" or not folder.exists()


def test_existing_files_are_never_replaced_without_overwrite(
    job_store: Path, exported: dict[str, Any]
) -> None:
    folder: Path = exported["folder"]
    before = _files(folder)
    with pytest.raises(InputError, match=r"45 file\(s\) of this export exist.*--overwrite"):
        plan_export(str(job_store), folder)
    assert _files(folder) == before
    # A single file in the way is enough.
    lone = folder.parent / "lone"
    lone.mkdir()
    first = exported["result"].files[0]
    (lone / first.name).write_bytes(b"mine")
    with pytest.raises(InputError, match="1 file"):
        export_cogs(str(job_store), lone)
    assert (lone / first.name).read_bytes() == b"mine" and len(list(lone.iterdir())) == 1
    # With overwrite: replaced, and no staging file left behind.
    export_cogs(str(job_store), lone, overwrite=True)
    assert cog_problems(lone / first.name) == []
    assert not [p for p in lone.iterdir() if p.name.startswith(".")]


def test_a_large_layer_is_tiled_with_overviews_and_written_window_by_window(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 10000, (1100, 1300), dtype=np.uint16)
    values[:50, :70] = 0
    lazy = da.from_array(values, chunks=256)
    windows: list[int] = []
    layer = CogLayer(tmp_path / "big.tif", nodata=0, scale=2.75e-5, offset=-0.2, unit="1")
    size = write_cogs(
        [layer],
        [lazy],
        crs=rasterio.crs.CRS.from_epsg(3035),
        transform=Affine(30.0, 0.0, 4_000_000.0, 0.0, -30.0, 3_000_000.0),
        blocksize=256,
        window=512,
        on_window=lambda: windows.append(1),
    )
    assert len(windows) == 3 * 3 + 1  # 512 px windows of 1100 x 1300, then the copy
    assert size == layer.path.stat().st_size
    assert cog_problems(layer.path, require_overviews=True) == []
    with rasterio.open(layer.path) as src:
        assert src.overviews(1) == [2, 4, 8]
        assert src.block_shapes[0] == (256, 256)
        assert src.profile["compress"] == "deflate"
        np.testing.assert_array_equal(src.read(1), values)
        assert (src.scales[0], src.offsets[0], src.nodata) == (2.75e-5, -0.2, 0.0)
    # The validator can fail: a plain striped GeoTIFF is no COG.
    plain = tmp_path / "plain.tif"
    with rasterio.open(
        plain,
        "w",
        driver="GTiff",
        width=1300,
        height=1100,
        count=1,
        dtype="uint16",
        crs="EPSG:3035",
        transform=Affine(30.0, 0.0, 4_000_000.0, 0.0, -30.0, 3_000_000.0),
    ) as dst:
        dst.write(values, 1)
    assert "the main image is not tiled" in cog_problems(plain)


# --- the command ----------------------------------------------------------------------------


def test_the_command_exports_and_refuses_to_overwrite(job_store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    folder = tmp_path / "cli"
    done = runner.invoke(main, ["export", str(job_store), "--format", "cog", str(folder)])
    assert done.exit_code == 0, done.output
    assert "COGs         40 in" in done.output
    assert len(list(folder.glob("lcv_*.tif"))) == 40 and (folder / "collection.json").is_file()
    again = runner.invoke(main, ["export", str(job_store), "--format", "cog", str(folder)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    other = runner.invoke(
        main, ["export", str(job_store), "--format", "netcdf", str(tmp_path / "n")]
    )
    assert other.exit_code == 2 and "'netcdf' is not 'cog'" in other.output
    assert not (tmp_path / "n").exists()
    named = runner.invoke(
        main,
        [
            "export",
            str(job_store),
            str(tmp_path / "o"),
            "--area",
            "graz",
            "--product",
            "s2.l2a",
            "--product-version",
            "v2.0",
            "--quiet",
        ],
    )
    assert named.exit_code == 0, named.output
    assert {parse_file_name(p.name)["area"] for p in (tmp_path / "o").glob("*.tif")} == {"graz"}
    assert all(p.name.endswith("_graz_epsg32633_v2.0.tif") for p in (tmp_path / "o").glob("*.tif"))


def test_the_command_warns_about_incomplete_tiles_and_exits_0(tmp_path: Path) -> None:
    url = str(tmp_path / "partial.zarr")
    _synthetic_store(url, ("red",), marked=2)
    runner = CliRunner()
    refused = runner.invoke(main, ["export", url, str(tmp_path / "a")])
    assert refused.exit_code == 2 and "--allow-incomplete" in refused.output
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # printed by the command, not raised
        done = runner.invoke(main, ["export", url, str(tmp_path / "b"), "--allow-incomplete"])
    assert done.exit_code == 0, done.output
    assert "warning:" in done.output and "2 tile(s)" in done.output
    assert os.listdir(tmp_path / "b")


def test_a_store_in_s3_exports_without_its_credentials(s3_server: Any, tmp_path: Path) -> None:
    url = "s3://composites/export-src.zarr"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in s3_server.env().items():
            mp.setenv(key, value)
        _synthetic_store(url, ("red",))
        done = CliRunner().invoke(main, ["export", url, str(tmp_path / "cogs"), "--quiet"])
        assert done.exit_code == 0, done.output
        raw = xr.open_zarr(url, mask_and_scale=False)
        files = sorted((tmp_path / "cogs").glob("*.tif"))
        assert len(files) == 4 * (3 + 3 + 1)  # red and NDVI at 3 percentiles, counts
        path = next(p for p in files if "_red_" in p.name and "_p75_" in p.name)
        with rasterio.open(path) as src:
            stored = raw["red"].sel(season=src.tags()["season"], percentile=75.0)
            # Read here: this module's cluster's workers started without the S3 credentials.
            expected = stored.compute(scheduler="threads").values
            np.testing.assert_array_equal(src.read(1), expected)
            assert src.tags()["source_store"] == url
    for written in (tmp_path / "cogs").rglob("*"):
        if written.is_file():
            data = written.read_bytes()
            assert s3_server.access_key.encode() not in data
            assert s3_server.secret_key.encode() not in data


def test_default_name_fields_come_from_the_store() -> None:
    attrs = {"stac_collection": "landsat-c2-l2", "cubehub_version": "0.4.1.dev3+gabc"}
    fields = default_fields("s3://bucket/composites/Graz_2022.zarr/", attrs)
    assert (fields.product, fields.area, fields.version) == ("landsat.c2.l2", "graz.2022", "v0.4")
    assert default_fields("x.icechunk", {}).version == "v1.0"  # no cubehub provenance
    assert default_fields("x.icechunk", {}, area="eumap").area == "eumap"
    start, end = np.datetime64("2014-12-02"), np.datetime64("2015-03-20")
    name = layer_file_name(
        "red_fill_source", None, start, end, resolution_m=30.0, epsg=3035, fields=fields
    )
    assert name == (
        "lcv_red.fill.source_landsat.c2.l2_c_30m_0..0cm_2014.12.02..2015.03.20_graz.2022_epsg3035_v0.4.tif"
    )
    assert parse_file_name(name)["type"] == "c"
    with pytest.raises(InputError, match="no '_'"):
        default_fields("x.zarr", {}, version="v1_1")
