"""The synthetic Landsat Collection 2 Level-2 archive: files, layouts, traps and truth."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

import realdata
from cubehub.catalog.items import normalize_items
from cubehub.catalog.profile_match import profile_for
from cubehub.demo.landsat import LandsatArchive, LandsatSpec, build_landsat_archive
from cubehub.errors import InputError

SR = ("blue", "green", "red", "nir08", "swir16", "swir22")


class Built:
    """A built archive, its items (hrefs = local paths) and its truth in memory."""

    def __init__(self, root: Path, spec: LandsatSpec) -> None:
        self.archive = build_landsat_archive(root, spec)
        self.items = self.archive.item_dicts(str(root))
        self.truth = self.archive.truth().load()
        self.time_of = {
            iid: k for k, ids in enumerate(self.truth.attrs["item_ids"]) for iid in ids.split(",")
        }

    def read(self, item: dict[str, Any], key: str) -> np.ndarray:
        with rasterio.open(item["assets"][key]["href"]) as src:
            band: np.ndarray = src.read(1)
        return band


@pytest.fixture(scope="module")
def recent(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """2021, Earth Search layout: Landsat 7 (SLC-off), 8 and 9."""
    return Built(tmp_path_factory.mktemp("landsat-2021"), LandsatSpec(size=32))


@pytest.fixture(scope="module")
def early(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """2003, Planetary Computer layout: Landsat 5 and 7, whose SLC fails on 2003-05-31."""
    spec = LandsatSpec(size=16, year=2003, layout="planetary-computer")
    return Built(tmp_path_factory.mktemp("landsat-2003"), spec)


def _thermal(item: dict[str, Any]) -> str:
    return "lwir11" if "lwir11" in item["assets"] else "lwir"


def test_the_satellites_of_the_year_fly(recent: Built, early: Built) -> None:
    platforms = Counter(i["properties"]["platform"] for i in recent.items)
    assert set(platforms) == {"landsat-7", "landsat-8", "landsat-9"}
    assert {i["properties"]["platform"] for i in early.items} == {"landsat-5", "landsat-7"}
    instruments = {i["properties"]["platform"]: i["properties"]["instruments"] for i in early.items}
    assert instruments == {"landsat-5": ["tm"], "landsat-7": ["etm+"]}


def test_assets_are_cogs_on_the_native_landsat_grid(recent: Built) -> None:
    for item in recent.items[:12]:
        for key, asset in item["assets"].items():
            with rasterio.open(asset["href"]) as src:
                assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
                assert src.crs.to_epsg() == 32633 and src.dtypes[0] == "uint16"
                assert src.nodata == (1 if key == "qa_pixel" else 0)
                assert src.transform.a == 30 and src.transform.c % 30 == 15
                assert src.transform.f % 30 == 15
                assert list(src.transform)[:6] == item["properties"]["proj:transform"]
    x0, _, x1, y1 = recent.archive.bounds
    assert x0 % 30 == 15 and y1 % 30 == 15 and (x1 - x0) == 32 * 30
    np.testing.assert_array_equal(recent.truth.x.values % 30, 0)  # centres on 30 m


def test_clear_pixels_hold_the_truth_dn_exactly(recent: Built) -> None:
    for item in recent.items:
        k = recent.time_of[item["id"]]
        clear = recent.truth["clear"].values[k]
        qa = recent.read(item, "qa_pixel")
        seen = clear & (qa != 1)
        for band in SR:
            refl = recent.read(item, band)[seen] * 2.75e-5 - 0.2
            np.testing.assert_allclose(refl, recent.truth[band].values[k][seen], rtol=0, atol=1e-9)
        kelvin = recent.read(item, _thermal(item))[seen] * 0.00341802 + 149.0
        np.testing.assert_allclose(kelvin, recent.truth["lwir11"].values[k][seen], atol=1e-9)


def test_thermal_decodes_to_kelvin(recent: Built, early: Built) -> None:
    for built in (recent, early):
        for item in built.items[:20]:
            key = _thermal(item)
            band = item["assets"][key]["raster:bands"][0]
            assert band["unit"] == "kelvin" and band["scale"] == 0.00341802
            assert band["offset"] == 149.0
            dn = built.read(item, key)
            kelvin = dn[dn > 0] * band["scale"] + band["offset"]
            assert kelvin.size and kelvin.min() > 240 and kelvin.max() < 320
    truth = recent.truth["lwir11"].where(recent.truth["clear"])
    summer = truth.sel(time=truth.time.dt.month == 7).mean()
    winter = truth.sel(time=truth.time.dt.month == 1).mean()
    assert 290 < float(summer) < 305 and 265 < float(winter) < 280


def test_qa_pixel_has_every_bit_and_tm_etm_no_cirrus(recent: Built, early: Built) -> None:
    def bits(built: Built, platforms: set[str]) -> set[int]:
        seen = 0
        for item in built.items:
            if item["properties"]["platform"] in platforms:
                for value in np.unique(built.read(item, "qa_pixel")):
                    seen |= int(value)
        return {b for b in range(16) if seen >> b & 1}

    assert set(range(8)) <= bits(recent, {"landsat-8", "landsat-9"})
    assert 2 not in bits(recent, {"landsat-7"}) and 2 not in bits(early, {"landsat-5"})
    assert {0, 1, 3, 4, 5, 6, 7} <= bits(early, {"landsat-5", "landsat-7"})
    qa = recent.truth["qa_pixel"].values
    clear = recent.truth["clear"].values
    assert not (clear & ((qa & 0b11111) != 0)).any()  # the truth is clear by QA's rule too
    assert (clear & ((qa & 32) != 0)).any()  # snow is clear: a surface state


def test_slc_off_gaps_are_nodata_after_the_failure_only(recent: Built, early: Built) -> None:
    for built in (recent, early):
        for item in built.items:
            props = item["properties"]
            qa = built.read(item, "qa_pixel")
            blue = built.read(item, "blue")
            assert ((qa == 1) == (blue == 0)).all(), item["id"]  # fill: 0, never a DN
            footprint_rows = (qa != 1).any(axis=1).sum()
            gaps = (qa[qa.any(axis=1)] == 1).mean() if footprint_rows else 0
            failed = props["platform"] == "landsat-7" and props["datetime"] >= "2003-05-31"
            striped = ((qa == 1) & (np.roll(qa, 1, axis=0) != 1)).sum() > 1
            if failed:
                assert striped and gaps > 0, item["id"]
            k = built.time_of[item["id"]]
            merged = built.truth["qa_pixel"].values[k]  # the overpass: its rows together
            assert (merged[qa != 1] == qa[qa != 1]).all()
            assert not built.truth["clear"].values[k][merged == 1].any()
    early_l7 = [i for i in early.items if i["properties"]["platform"] == "landsat-7"]
    days = {date.fromisoformat(i["properties"]["datetime"][:10]) for i in early_l7}
    assert min(days) < date(2003, 5, 31) < max(days)


def test_row_overlap_is_one_day_and_sidelap_other_days(recent: Built) -> None:
    by_day: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for item in recent.items:
        props = item["properties"]
        by_day[(props["platform"], props["datetime"][:10])].append(item)
    pairs = [group for group in by_day.values() if len(group) == 2]
    assert pairs and all(len(g) <= 2 for g in by_day.values())
    for north, south in pairs:
        assert {north["properties"]["landsat:wrs_row"], south["properties"]["landsat:wrs_row"]} == {
            "027",
            "028",
        }
        both = (recent.read(north, "qa_pixel") != 1) & (recent.read(south, "qa_pixel") != 1)
        assert both.any()  # the middle of the window, seen twice
        for key in (*SR, _thermal(north), "qa_pixel"):
            np.testing.assert_array_equal(
                recent.read(north, key)[both], recent.read(south, key)[both]
            )
        assert recent.time_of[north["id"]] == recent.time_of[south["id"]]
    paths = defaultdict(set)
    for (platform, day), group in by_day.items():
        paths[platform, group[0]["properties"]["landsat:wrs_path"]].add(date.fromisoformat(day))
    d189, d190 = paths["landsat-8", "189"], paths["landsat-8", "190"]
    assert not d189 & d190  # sidelap days differ: path 190 comes 7 days after 189
    assert {(b - a).days % 16 for a in d189 for b in d190} >= {7}
    assert recent.truth.sizes["time"] == len(by_day)


def test_items_are_recognised_in_both_layouts(recent: Built, early: Built) -> None:
    assert {profile_for(i).name for i in recent.items} == {"earth-search/landsat-c2-l2"}
    assert {profile_for(i).name for i in early.items} == {"planetary-computer/landsat-c2-l2"}
    es = next(i for i in recent.items if i["properties"]["platform"] == "landsat-8")
    pc = early.items[0]
    assert es["properties"]["proj:code"] == "EPSG:32633" and "proj:epsg" not in es["properties"]
    assert pc["properties"]["proj:epsg"] == 32633
    assert es["properties"]["grid:code"] in ("WRS2-189027", "WRS2-190027", "WRS2-190028")
    # Every property and asset key ours have, the real items of that layout have too.
    real_es = realdata.earth_search_same_place()["landsat-c2-l2"]
    real_pc = realdata.pc_landsat()
    assert set(es["properties"]) - {"proj:code"} <= set(real_es["properties"])
    assert set(es["assets"]) <= set(real_es["assets"])
    real_l7 = next(i for i in real_pc if i["properties"]["platform"] == "landsat-7")
    ours_l7 = next(i for i in early.items if i["properties"]["platform"] == "landsat-7")
    assert set(ours_l7["properties"]) <= set(real_l7["properties"])
    assert set(ours_l7["assets"]) <= set(real_l7["assets"])
    for key in ours_l7["assets"]:
        assert ours_l7["assets"][key]["raster:bands"] == [
            {k: v for k, v in real_l7["assets"][key]["raster:bands"][0].items() if k != "unit"}
            | {k: v for k, v in ours_l7["assets"][key]["raster:bands"][0].items() if k == "unit"}
        ], key
    normalised = normalize_items(early.items, bands=[*SR, "lwir11"])
    l5 = next(i for i in normalised.items if i.properties["platform"] == "landsat-5")
    assert l5.assets["lwir11"].href.endswith("_ST_B6.TIF")  # TM's thermal band is "lwir"
    assert l5.assets["lwir11"].extra_fields["raster:bands"][0]["offset"] == 149.0
    assert l5.assets["blue"].href.endswith("_SR_B1.TIF")


def test_bad_specs_are_refused(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"size": 20}, "multiple of 16"),
        ({"size": 8192}, "up to 4096"),
        ({"year": 1980}, "between 1985 and 2100"),
        ({"layout": "usgs"}, "layout"),
        ({"seed": -1}, "seed"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            LandsatSpec(**kwargs)
    with pytest.raises(InputError, match="LandsatSpec"):
        build_landsat_archive(tmp_path, {"size": 16})  # type: ignore[arg-type]


def test_a_second_build_reuses_the_archive(recent: Built) -> None:
    root = recent.archive.root
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.TIF")}
    again = build_landsat_archive(root, recent.archive.spec)
    assert isinstance(again, LandsatArchive) and again == recent.archive
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.TIF")} == before
