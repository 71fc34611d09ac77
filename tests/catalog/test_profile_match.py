"""Which profile reads an item: ties between identical layouts, hrefs, and legacy items,
on the real items of tests/data."""

from __future__ import annotations

import copy
from typing import Any

import pystac
import pytest

from cubehub.catalog.items import normalize_items
from cubehub.catalog.profile_match import collection_profiles, job_profile, profile_for
from cubehub.catalog.profiles import PROFILES
from cubehub.cube import load_cube
from cubehub.errors import InputError
from realdata import earth_search_same_place, odc_single, pc_landsat, pc_sentinel2

USGS_L8 = "LC08_L2SP_028030_20200114_20200824_02_T1_SR.json"


def _stactools(item: dict[str, Any], href_root: str | None = None) -> dict[str, Any]:
    """The item as a stactools catalog elsewhere has it: no links to its provider, and
    (with ``href_root``) its files somewhere else."""
    out = copy.deepcopy(item)
    out["links"] = []
    if href_root is not None:
        for key, asset in out["assets"].items():
            asset["href"] = f"{href_root}/{out['id']}/{key}.tif"
    return out


def test_the_two_landsat_c2_l2_profiles_read_items_identically() -> None:
    pc, es = (p for p in PROFILES if p.collection_ids == ("landsat-c2-l2",))
    assert pc.layout == es.layout and pc.name != es.name


def test_a_planetary_computer_landsat_item_without_links_is_read() -> None:
    """Was: "matches no single known layout ... Pass profile=" (two profiles tied)."""
    items = [_stactools(i) for i in pc_landsat()]
    # Its files are still on the Planetary Computer's blob storage: that decides.
    assert {profile_for(i).name for i in items} == {"planetary-computer/landsat-c2-l2"}
    result = normalize_items(items)
    assert result.profile.name == "planetary-computer/landsat-c2-l2"
    assert "lwir11" in result.bands and result.profile.mask.name == "qa_pixel"


def test_a_landsat_item_on_other_storage_gets_one_profile_whatever_the_order() -> None:
    items = [_stactools(i, "http://127.0.0.1:8123/landsat") for i in pc_landsat()[:20]]
    first = collection_profiles("landsat-c2-l2", None)[0].name  # of the tied, alike ones
    assert {profile_for(i).name for i in items} == {first}
    assert normalize_items(items[::-1]).profile.name == first
    # Files on plain HTTP need no Planetary Computer token (this fetches none).
    cube = load_cube(items[:3], ["red", "lwir11"], bbox=(-104.9, 40.0, -104.8, 40.1))
    assert cube["lwir11"].attrs["units"] == "K"


def test_an_earth_search_landsat_item_without_links_is_told_by_its_hrefs() -> None:
    es = _stactools(earth_search_same_place()["landsat-c2-l2"])
    es["properties"] = {
        k: v for k, v in es["properties"].items() if not k.startswith("earthsearch:")
    }
    assert profile_for(es).name == "earth-search/landsat-c2-l2"


def test_layouts_that_really_differ_still_ask_for_the_profile() -> None:
    pc = _stactools(pc_sentinel2()[0])
    pc["assets"] = {"x": {"href": "http://127.0.0.1/x.tif"}}  # neither layout's keys
    with pytest.raises(InputError, match=r"no single known layout.*collection_profile"):
        profile_for(pc)
    with pytest.raises(InputError, match=r"several providers with different layouts"):
        profile_for("sentinel-2-l2a")


def _stac_07(item: dict[str, Any]) -> dict[str, Any]:
    """A real USGS item as STAC 0.7 wrote it (stac-spec v0.7.0, eo extension): the bands
    listed once in properties ``eo:bands``, each asset's ``eo:bands`` their integer
    indexes, ``eo:epsg`` for ``proj:epsg``, no ``stac_extensions``, band-id asset keys
    (``B2``) as in that version's Landsat example."""
    old = copy.deepcopy(item)
    old["stac_version"] = "0.7.0"
    old.pop("stac_extensions")
    props = old["properties"]
    props["eo:epsg"] = props.pop("proj:epsg")
    for key in ("proj:shape", "proj:transform"):
        props.pop(key)
    bands: list[dict[str, Any]] = []
    assets = {}
    for key, asset in old["assets"].items():
        if asset.get("eo:bands"):
            bands.append(asset["eo:bands"][0])
            asset["eo:bands"] = [len(bands) - 1]
            key = bands[-1]["name"]
        assets[key] = asset
    old["assets"], props["eo:bands"] = assets, bands
    return old


def test_a_stac_0_7_item_is_refused_naming_the_item_and_the_field() -> None:
    """Was: AttributeError: 'int' object has no attribute 'get'."""
    old = _stac_07(odc_single(USGS_L8))
    expected = (
        r"item 'LC08_L2SP_028030_20200114_20200824_02_T1_SR': asset 'B1' eo:bands\[0\] is 0, "
        r"not an object; this is a STAC 0.7.0 item .*pystac.Item.from_dict"
    )
    with pytest.raises(InputError, match=expected):
        normalize_items([old])
    with pytest.raises(InputError, match=expected):
        profile_for(old)
    # What the message says to do works: pystac migrates it.
    migrated = normalize_items([pystac.Item.from_dict(copy.deepcopy(old))], ["blue", "red"])
    assert migrated.items[0].assets["blue"].href.endswith("_SR_B2.TIF")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda i: i.pop("properties"), "properties is None, not an object"),
        (lambda i: i["assets"].update(red=3), "asset 'red' is 3, not an object with an href"),
        (
            lambda i: i["assets"]["red"].update({"raster:bands": {"scale": 1}}),
            "asset 'red' raster:bands is {'scale': 1}, not a list",
        ),
    ],
)
def test_malformed_items_name_the_item_and_the_field(change: Any, message: str) -> None:
    item = pc_landsat()[0]
    change(item)
    with pytest.raises(InputError, match=f"item 'LC08_L2SP_033032_20241127_02_T1': {message}"):
        profile_for(item)


def test_job_profiles_by_collection_api_and_name() -> None:
    pc_url = "https://planetarycomputer.microsoft.com/api/stac/v1"
    assert job_profile("landsat-c2-l2", stac_url=pc_url).name == "planetary-computer/landsat-c2-l2"
    assert job_profile("sentinel-2-l2a", stac_url="http://127.0.0.1:9").default_bands == (
        "blue",
        "green",
        "red",
        "nir",
        "swir16",
        "swir22",
    )
    assert len(collection_profiles("sentinel-2-l2a", "http://127.0.0.1:9")) == 2
    usgs = job_profile("landsat-c2l2-sr")
    assert "lwir11" not in usgs.default_bands and usgs.resolution_m == 30
    with pytest.raises(InputError, match=r"reads collection.*landsat-c2-l2, not 'sentinel-2-l2a'"):
        job_profile("sentinel-2-l2a", name="earth-search/landsat-c2-l2")
    with pytest.raises(InputError, match="unknown collection profile 'pc/landsat'"):
        job_profile("landsat-c2-l2", name="pc/landsat")


def test_every_default_band_is_a_band_of_its_profile() -> None:
    for profile in PROFILES:
        assert profile.check_bands(profile.default_bands) == profile.default_bands, profile.name
        units = {profile.band(b).units for b in profile.default_bands}
        assert units <= {"1", "K"}
    thermal = job_profile("landsat-c2-l2").band("lwir11")
    assert (thermal.units, thermal.long_name) == ("K", "lwir11 surface temperature")
    assert (thermal.scale, thermal.offset) == (0.00341802, 149.0)
