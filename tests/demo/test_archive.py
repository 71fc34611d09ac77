"""The synthetic Sentinel-2 L2A archive: files, STAC layout, traps and truth."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr

from cubehub.demo.archive import MANIFEST_NAME, MAX_SIZE, Archive, ArchiveSpec, build_archive
from cubehub.errors import DataError, InputError

BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
ASSETS = (*BANDS, "scl")
SPEC = ArchiveSpec(size=64)
#: Small and quick, for the tests that build several times.
TINY = ArchiveSpec(size=32, revisit_days=16)


class Built:
    """The shared test archive, its items (hrefs = local paths) and its truth in memory."""

    def __init__(self, root: Path) -> None:
        self.calls: list[tuple[int, int]] = []
        self.archive = build_archive(root, SPEC, progress=lambda d, t: self.calls.append((d, t)))
        self.items = self.archive.item_dicts(str(root))
        self.truth = self.archive.truth().load()
        self.time_of = {iid: k for k, iid in enumerate(self.truth.attrs["item_ids"])}

    def read(self, item: dict[str, Any], asset: str) -> np.ndarray:
        with rasterio.open(item["assets"][asset]["href"]) as src:
            band: np.ndarray = src.read(1)
        return band

    def truth_index(self, item: dict[str, Any]) -> int:
        """Time index of the acquisition an item shows (duplicates share their kept twin's)."""
        day = item["properties"]["datetime"]
        matches = [k for k, t in enumerate(self.truth.time.values) if str(t)[:19] == day[:19]]
        assert len(matches) == 1
        return matches[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return Built(tmp_path_factory.mktemp("archive"))


def _props(item: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = item["properties"]
    return props


def _expected_add(item: dict[str, Any]) -> int:
    """DN the file adds to the truth: the unremoved +1000 offset of baseline >= 04.00."""
    p = _props(item)
    new_baseline = tuple(map(int, p["s2:processing_baseline"].split("."))) >= (4, 0)
    return 1000 if new_baseline and not p["earthsearch:boa_offset_applied"] else 0


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


# --- files ------------------------------------------------------------------------------------


def test_progress_is_reported_once_per_item(built: Built) -> None:
    n = len(built.items)
    assert n >= 70  # a 5-day revisit over a year, plus the reprocessed duplicate
    assert built.calls == [(k, n) for k in range(1, n + 1)]


def test_assets_are_cogs_that_match_their_stac_metadata(built: Built) -> None:
    for item in built.items:
        for key in ASSETS:
            asset = item["assets"][key]
            band = asset["raster:bands"][0]
            with rasterio.open(asset["href"]) as src:
                assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
                assert src.profile["compress"] == "deflate"
                assert src.block_shapes == [(256, 256)]
                assert src.nodata == 0
                assert src.crs.to_epsg() == 32633
                assert list(src.transform)[:6] == asset["proj:transform"]
                assert [src.height, src.width] == asset["proj:shape"]
                assert src.dtypes[0] == band["data_type"]
    first = built.items[0]["assets"]
    assert first["red"]["proj:shape"] == [64, 64] and first["swir16"]["proj:shape"] == [32, 32]
    assert first["red"]["proj:transform"][0] == 10 and first["scl"]["proj:transform"][0] == 20


def test_files_sit_in_the_earth_search_folder_layout(built: Built) -> None:
    item = next(i for i in built.items if i["id"] == "S2B_33TWN_20220205_0_L2A")
    href = item["assets"]["red"]["href"]
    assert href.endswith("/sentinel-s2-l2a-cogs/33/T/WN/2022/2/S2B_33TWN_20220205_0_L2A/B04.tif")
    assert Path(href).with_name("S2B_33TWN_20220205_0_L2A.json").is_file()
    assert Path(item["assets"]["scl"]["href"]).name == "SCL.tif"


def test_clear_pixels_hold_the_truth_plus_the_documented_offsets(built: Built) -> None:
    checked_offsets = with_clear = 0
    for item in built.items:
        k = built.truth_index(item)
        clear = built.truth["clear"].values[k]
        add = _expected_add(item)
        if item["id"] in built.truth.attrs["dropped_item_ids"]:
            add += 300  # the miscalibrated _0_ of the duplicate pair
        checked_offsets += add == 1000 and clear.any()
        with_clear += clear.any()
        for band in BANDS:
            dn = built.read(item, band)
            truth = np.rint(built.truth[band].values[k] * 1e4).astype(np.int64)
            if dn.shape[0] != truth.shape[0]:  # 20 m asset: truth repeats it 2 x 2
                truth, on = truth[::2, ::2], clear[::2, ::2]
            else:
                on = clear
            np.testing.assert_array_equal(
                dn[on].astype(np.int64), truth[on] + add, err_msg=item["id"]
            )
    assert checked_offsets >= 3 and with_clear >= len(built.items) - 5


def test_clouds_are_in_the_files_and_not_in_the_truth(built: Built) -> None:
    brighter = darker = 0
    for item in built.items:
        k = built.truth_index(item)
        scl = built.read(item, "scl")
        blue = built.read(item, "blue")[::2, ::2].astype(float) - _expected_add(item)
        truth = built.truth["blue"].values[k][::2, ::2] * 1e4
        cloud, shadow = np.isin(scl, (8, 9)), scl == 3
        if cloud.sum() > 20:
            brighter += blue[cloud].mean() > truth[cloud].mean() + 1000
        if shadow.sum() > 20:
            darker += blue[shadow].mean() < 0.6 * truth[shadow].mean()
    assert brighter >= 10 and darker >= 10


def test_scl_has_every_trap_class(built: Built) -> None:
    seen: set[int] = set()
    for item in built.items:
        seen |= set(np.unique(built.read(item, "scl")).tolist())
    assert {0, 3, 4, 5, 6, 8, 9, 10} <= seen
    assert seen <= {0, 3, 4, 5, 6, 8, 9, 10}


def test_cloud_cover_is_the_share_of_cloud_shadow_and_cirrus(built: Built) -> None:
    covers = []
    for item in built.items:
        scl = built.read(item, "scl")
        expected = 100 * np.isin(scl, (3, 8, 9, 10)).sum() / (scl > 0).sum()
        assert _props(item)["eo:cloud_cover"] == pytest.approx(expected, abs=1e-5)
        covers.append(expected)
    assert sum(c == 0 for c in covers) >= 10  # clear dates
    assert max(covers) > 80  # and nearly overcast ones


def test_swath_edge_items_are_zero_beyond_a_slanted_edge(built: Built) -> None:
    partial = [i for i in built.items if _props(i)["s2:nodata_pixel_percentage"] > 0]
    full = [i for i in built.items if _props(i)["s2:nodata_pixel_percentage"] == 0]
    assert len(partial) >= 20 and len(full) >= 20
    for item in partial:
        outside = built.read(item, "scl") == 0
        outside_10m = outside.repeat(2, 0).repeat(2, 1)
        for band in BANDS:
            dn = built.read(item, band)
            mask = outside_10m if dn.shape == outside_10m.shape else outside
            assert (dn[mask] == 0).all() and (dn[~mask] > 0).all()
        first_outside = outside.argmax(axis=1)  # the edge column of each row moves: slanted
        assert first_outside[0] > first_outside[-1] + 5
        assert not built.truth["clear"].values[built.truth_index(item)][outside_10m].any()
    for item in full:
        assert (built.read(item, "scl") > 0).all() and (built.read(item, "nir") > 0).all()
    lon_span = [
        np.ptp(np.array(i["geometry"]["coordinates"][0])[:, 0]) for i in (partial[0], full[0])
    ]
    assert lon_span[0] < lon_span[1]


# --- STAC items -------------------------------------------------------------------------------


def test_items_use_projection_v2_and_earth_search_fields(built: Built) -> None:
    for item in built.items:
        text = json.dumps(item)
        assert "proj:epsg" not in text
        p = _props(item)
        assert p["proj:code"] == "EPSG:32633"
        assert (
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
            in item["stac_extensions"]
        )
        assert (
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json" in item["stac_extensions"]
        )
        assert item["collection"] == "sentinel-2-l2a"
        assert set(item["assets"]) == set(ASSETS)
        assert p["mgrs:utm_zone"] == 33 and p["grid:code"] == "MGRS-33TWN"
        assert p["constellation"] == "sentinel-2" and p["instruments"] == ["msi"]
        assert (
            item["id"]
            == f"S2{p['platform'][-1].upper()}_33TWN_{p['datetime'][:10].replace('-', '')}_{p['s2:sequence']}_L2A"
        )
        assert f"_N{p['s2:processing_baseline'].replace('.', '')}_" in p["s2:product_uri"]
        assert p["datetime"][11:13] == "10" or p["datetime"][11:13] == "09"
        assert [link["rel"] for link in item["links"]] == ["license"]  # an API adds its own
        red, scl = item["assets"]["red"], item["assets"]["scl"]
        assert red["eo:bands"][0]["common_name"] == "red" and red["gsd"] == 10
        assert (
            red["raster:bands"][0]["scale"] == 0.0001
            and red["raster:bands"][0]["bits_per_sample"] == 15
        )
        assert scl["raster:bands"][0] == {
            "nodata": 0,
            "data_type": "uint8",
            "spatial_resolution": 20,
        }
        lons, lats = np.array(item["geometry"]["coordinates"][0]).T
        assert item["bbox"] == [lons.min(), lats.min(), lons.max(), lats.max()]
    platforms = [_props(i)["platform"] for i in built.items if _props(i)["s2:sequence"] == "0"]
    assert platforms[:4] == ["sentinel-2a", "sentinel-2b", "sentinel-2a", "sentinel-2b"]


def test_processing_baseline_offsets_follow_earth_search(built: Built) -> None:
    unremoved = []
    for item in built.items:
        p = _props(item)
        offsets = {item["assets"][b]["raster:bands"][0]["offset"] for b in BANDS}
        if p["datetime"] < "2022-01-25":
            assert p["s2:processing_baseline"] == "03.01" and offsets == {0.0}
            assert p["earthsearch:boa_offset_applied"] is False
        else:
            assert p["s2:processing_baseline"] in ("04.00", "05.09") and offsets == {-0.1}
            if not p["earthsearch:boa_offset_applied"]:
                unremoved.append(date.fromisoformat(p["datetime"][:10]))
    baselines = {_props(i)["s2:processing_baseline"] for i in built.items}
    assert baselines == {"03.01", "04.00", "05.09"}
    assert len(unremoved) >= 3
    assert any(d < date(2022, 3, 21) for d in unremoved)  # ODSE winter
    assert any(date(2022, 6, 25) <= d <= date(2022, 9, 12) for d in unremoved)  # summer


def test_one_acquisition_is_duplicated_as_a_biased_0_and_a_true_1(built: Built) -> None:
    by_id = {i["id"]: i for i in built.items}
    ones = [iid for iid in by_id if iid.endswith("_1_L2A")]
    assert len(ones) == 1
    one, zero = by_id[ones[0]], by_id[ones[0].replace("_1_", "_0_")]
    assert _props(one)["datetime"] == _props(zero)["datetime"]
    assert (_props(zero)["s2:sequence"], _props(one)["s2:sequence"]) == ("0", "1")
    assert _props(one)["s2:generation_time"] > _props(zero)["s2:generation_time"]
    assert "2022-06-25" <= _props(one)["datetime"] <= "2022-09-12"  # summer: it matters
    assert built.truth.attrs["dropped_item_ids"] == [zero["id"]]
    assert one["id"] in built.truth.attrs["item_ids"]
    valid = built.read(one, "scl") > 0
    np.testing.assert_array_equal(built.read(one, "scl"), built.read(zero, "scl"))
    for band in BANDS:
        diff = built.read(zero, band).astype(int) - built.read(one, band).astype(int)
        on = valid if diff.shape == valid.shape else valid.repeat(2, 0).repeat(2, 1)
        assert (diff[on] == 300).all()


def test_item_collection_and_collection_for_a_stac_api(built: Built, tmp_path: Path) -> None:
    path = built.archive.write_item_collection(tmp_path / "items.json", "http://127.0.0.1:8123/")
    features = json.loads(path.read_text())
    assert features["type"] == "FeatureCollection" and len(features["features"]) == len(built.items)
    red = features["features"][0]["assets"]["red"]["href"]
    assert red.startswith("http://127.0.0.1:8123/sentinel-s2-l2a-cogs/33/T/WN/2021/12/")
    s3 = built.archive.item_dicts("s3://demo-bucket/archive")[0]["assets"]["scl"]["href"]
    assert s3.startswith("s3://demo-bucket/archive/sentinel-s2-l2a-cogs/") and s3.endswith(
        "/SCL.tif"
    )

    collection = built.archive.collection_dict()
    assert collection["type"] == "Collection" and collection["id"] == "sentinel-2-l2a"
    (interval,) = collection["extent"]["temporal"]["interval"]
    assert interval == [_props(built.items[0])["datetime"], _props(built.items[-1])["datetime"]]
    west, south, east, north = built.archive.bbox_lonlat()
    assert collection["extent"]["spatial"]["bbox"][0] == pytest.approx([west, south, east, north])
    assert 15.0 < west < east < 16.5 and 46.8 < south < north < 47.9  # inside MGRS 33TWN
    x0, y0, x1, y1 = built.archive.bounds
    assert (x1 - x0, y1 - y0) == (640.0, 640.0) and x0 % 20 == 0 and y1 % 20 == 0
    assert x0 >= 499_980 and x1 <= 609_780 and y0 >= 5_190_240 and y1 <= 5_300_040


# --- truth ------------------------------------------------------------------------------------


def test_truth_is_exact_positive_reflectance_on_the_10m_grid(built: Built) -> None:
    truth, archive = built.truth, built.archive
    assert truth.sizes == {"time": len(built.items) - 1, "y": 64, "x": 64}
    assert truth.time.dtype == np.dtype("datetime64[ns]")
    assert (np.diff(truth.time.values) > np.timedelta64(0)).all()
    x0, _, _, y1 = archive.bounds
    np.testing.assert_allclose(truth.x.values, x0 + 5 + 10 * np.arange(64))
    np.testing.assert_allclose(truth.y.values, y1 - 5 - 10 * np.arange(64))
    for band in BANDS:
        values = truth[band].values
        assert values.dtype == np.float64 and (values > 0).all()
        np.testing.assert_array_equal(values, np.rint(values * 1e4) / 1e4)
    swir = truth["swir16"].values
    np.testing.assert_array_equal(swir[:, ::2, ::2], swir[:, 1::2, 1::2])
    scl = truth["scl"].values
    assert scl.dtype == np.uint8
    np.testing.assert_array_equal(truth["clear"].values, np.isin(scl, (4, 5, 6)))
    assert set(np.unique(truth["landcover"].values)) == set(truth["landcover"].attrs["flag_values"])
    kept = [i for i in built.items if i["id"] in truth.attrs["item_ids"]]
    assert [i["id"] for i in kept] == truth.attrs["item_ids"]
    assert [_props(i)["datetime"][:23] for i in kept] == [str(t)[:23] for t in truth.time.values]


def test_truth_ndvi_follows_the_seasons(built: Built) -> None:
    truth = built.truth
    nir, red = truth["nir"].values, truth["red"].values
    ndvi = (nir - red) / (nir + red)
    landcover = truth["landcover"].values
    attrs = truth["landcover"].attrs
    codes = dict(zip(attrs["flag_meanings"].split(), attrs["flag_values"], strict=True))
    months = truth.time.dt.month.values

    def mean_ndvi(cover: str, month: int) -> float:
        return float(ndvi[months == month][:, landcover == codes[cover]].mean())

    for cover in ("deciduous_forest", "summer_crop", "grassland"):
        assert mean_ndvi(cover, 7) > mean_ndvi(cover, 1) + 0.2, cover
    assert mean_ndvi("winter_crop", 5) > mean_ndvi("winter_crop", 8) + 0.3  # harvested in July
    assert mean_ndvi("water", 7) < 0 and mean_ndvi("water", 1) < 0
    evergreen = ndvi[:, landcover == codes["evergreen_forest"]].mean(axis=1)
    assert evergreen.min() > 0.5  # evergreen stays green
    assert ndvi.std(axis=0).min() > 0  # every pixel varies from date to date


# --- build behaviour --------------------------------------------------------------------------


def test_second_build_reuses_the_archive_without_writing(tmp_path: Path) -> None:
    first = build_archive(tmp_path, TINY)
    before = _mtimes(tmp_path)
    calls: list[tuple[int, int]] = []
    again = build_archive(tmp_path, TINY, progress=lambda d, t: calls.append((d, t)))
    assert again == first and calls == []
    assert _mtimes(tmp_path) == before


def test_a_new_spec_rebuilds_and_leaves_nothing_stale(tmp_path: Path) -> None:
    first = build_archive(tmp_path, TINY)
    old_ids = {i["id"] for i in first.item_dicts("x")}
    old_red = first.truth()["red"].values
    second = build_archive(tmp_path, ArchiveSpec(size=32, revisit_days=15, seed=1))
    new_ids = {i["id"] for i in second.item_dicts("x")}
    assert new_ids != old_ids
    on_disk = {p.name for p in tmp_path.rglob("*.json")} - {MANIFEST_NAME, "zarr.json"}
    assert on_disk == {f"{i}.json" for i in new_ids}
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["spec"]["seed"] == 1
    assert second.truth()["red"].shape[0] != old_red.shape[0]
    reseeded = build_archive(tmp_path, ArchiveSpec(size=32, revisit_days=16, seed=1)).truth()
    assert not np.array_equal(reseeded["red"].values, old_red)


def test_the_same_spec_gives_the_same_pixels(tmp_path: Path) -> None:
    a = build_archive(tmp_path / "a", TINY).truth()
    b = build_archive(tmp_path / "b", TINY).truth()
    xr.testing.assert_identical(a.load(), b.load())
    file_a, file_b = (next((tmp_path / d).rglob("B08.tif")) for d in "ab")
    with rasterio.open(file_a) as src_a, rasterio.open(file_b) as src_b:
        np.testing.assert_array_equal(src_a.read(), src_b.read())


def test_a_shared_land_seed_keeps_the_land_under_other_weather(tmp_path: Path) -> None:
    a = build_archive(tmp_path / "a", ArchiveSpec(size=32, revisit_days=16, seed=5, land_seed=0))
    b = build_archive(tmp_path / "b", ArchiveSpec(size=32, revisit_days=16, seed=6, land_seed=0))
    ta, tb = a.truth().load(), b.truth().load()
    np.testing.assert_array_equal(ta["landcover"].values, tb["landcover"].values)
    assert not np.array_equal(ta["scl"].values, tb["scl"].values), "the clouds differ"
    other = build_archive(tmp_path / "c", ArchiveSpec(size=32, revisit_days=16, seed=5)).truth()
    assert not np.array_equal(other["landcover"].values, ta["landcover"].values)


@pytest.mark.parametrize("damage", ["manifest", "asset"])
def test_a_half_built_archive_is_rebuilt(tmp_path: Path, damage: str) -> None:
    archive = build_archive(tmp_path, TINY)
    item = archive.item_dicts(str(tmp_path))[3]
    victim = Path(item["assets"]["nir"]["href"])
    (tmp_path / MANIFEST_NAME if damage == "manifest" else victim).unlink()
    before = _mtimes(tmp_path)
    calls: list[tuple[int, int]] = []
    build_archive(tmp_path, TINY, progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1]
    assert victim.is_file() and (tmp_path / MANIFEST_NAME).is_file()
    after = _mtimes(tmp_path)
    changed = [p for p in before if before[p] != after.get(p)]
    assert len(changed) >= len(before) - 1


@pytest.mark.parametrize("size", [32, 2048, 8192, MAX_SIZE])
def test_every_window_lies_inside_the_tile_on_the_20m_grid(size: int) -> None:
    x0, y0, x1, y1 = Archive(Path("unused"), ArchiveSpec(size=size)).bounds
    assert (x1 - x0, y1 - y0) == (10.0 * size, 10.0 * size)
    assert x0 >= 499_980 and x1 <= 609_780 and y0 >= 5_190_240 and y1 <= 5_300_040
    assert (x0 - 499_980) % 20 == 0 and (5_300_040 - y1) % 20 == 0


def test_an_unfinished_archive_is_not_served(tmp_path: Path) -> None:
    archive = Archive(tmp_path, TINY)
    with pytest.raises(DataError, match="build_archive"):
        archive.truth()
    with pytest.raises(DataError, match="build_archive"):
        archive.item_dicts("http://127.0.0.1:1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "multiple of 32"),
        ({"size": 100}, "use e.g. 96"),
        ({"size": -64}, "multiple of 32"),
        ({"size": 11008}, "up to 10976"),
        ({"size": 64.0}, "integer"),
        ({"year": 2010}, "between 2016 and 2100"),
        ({"revisit_days": 0}, "revisit_days"),
        ({"seed": -1}, "seed"),
        ({"land_seed": -1}, "land_seed"),
    ],
)
def test_bad_specs_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        ArchiveSpec(**kwargs)


def test_bad_arguments_are_refused_before_any_work(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(InputError, match="not a directory"):
        build_archive(a_file, TINY)
    with pytest.raises(InputError, match="ArchiveSpec"):
        build_archive(tmp_path / "x", {"size": 64})  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()
    archive = build_archive(tmp_path / "ok", TINY)
    with pytest.raises(InputError, match="base_url"):
        archive.item_dicts("")
