"""Collection profiles and item normalisation, on every real item set in tests/data."""

from __future__ import annotations

import copy
import ipaddress
import random
import socket
from collections.abc import Iterator
from datetime import date
from typing import Any

import dask
import numpy as np
import pystac
import pytest
import stackstac

from cubehub.catalog.items import NormalizedItems, normalize_items
from cubehub.catalog.observations import solar_day
from cubehub.catalog.profile_match import profile_for
from cubehub.catalog.profiles import PROFILES
from cubehub.demo.archive import Archive
from cubehub.errors import InputError
from realdata import (
    ITEM_SETS,
    earth_search_s2,
    earth_search_same_place,
    odc_single,
    odc_strip,
    pc_landsat,
    pc_landsat8_legacy,
    pc_sentinel2,
)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any name lookup or connection that is not to loopback."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def _loopback(host: Any) -> bool:
        try:
            return ipaddress.ip_address(str(host)).is_loopback
        except ValueError:
            return str(host) == "localhost"

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _loopback(host):
            raise AssertionError(f"network lookup of {host!r} during a test")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and not _loopback(address[0]):
            raise AssertionError(f"network connection to {address!r} during a test")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    yield


def _raster(item: pystac.Item, band: str) -> dict[str, Any]:
    return dict(item.assets[band].extra_fields["raster:bands"][0])


# -- every set ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ITEM_SETS))
def test_every_real_item_set_normalises(name: str, no_network: None) -> None:
    load, profile_name = ITEM_SETS[name]
    features = load()
    before = copy.deepcopy(features)
    result = normalize_items(features)

    assert features == before, "the input items were changed"
    assert result.profile.name == profile_name
    assert result.items, "no item left"
    assert len(result.items) + len(result.duplicates) == len(features)
    assert set(result.assets) <= set(result.profile.band_names)
    assert result.assets[-1] == result.profile.mask.name
    times = [i.datetime for i in result.items if i.datetime is not None]
    assert len(times) == len(result.items) and times == sorted(times)
    for item in result.items:
        props = item.properties
        assert isinstance(props["proj:epsg"], int) and 2000 < props["proj:epsg"] < 100_000
        assert props["cubehub:profile"] == profile_name
        assert item.get_root_link() is None
        lacking = result.missing.get(item.id, ())
        assert set(item.assets) == set(result.assets) - set(lacking)
        assert result.profile.mask.name in item.assets
        for key, asset in item.assets.items():
            fields = asset.extra_fields
            assert fields["proj:epsg"] == props["proj:epsg"]
            assert len(fields["proj:shape"]) == 2 and len(fields["proj:transform"]) >= 6
            raster = fields["raster:bands"][0]
            assert "nodata" in raster
            if key == result.profile.mask.name:
                assert "scale" not in raster and "offset" not in raster
            else:
                assert raster["scale"] > 0 and isinstance(raster["offset"], float)
        # stackstac converts with to_dict(); that must never go to the network.
        assert item.to_dict()["id"] == item.id


def test_profile_recognised_from_each_set() -> None:
    for name, (load, profile_name) in ITEM_SETS.items():
        for feature in load()[:5]:
            assert profile_for(feature).name == profile_name, name
            assert profile_for(pystac.Item.from_dict(feature)).name == profile_name, name


# -- scale and offset ---------------------------------------------------------------------

#: The 33TWN items of Earth Search: (baseline, boa_offset_applied) -> expected offset.
EXPECTED_33TWN_OFFSETS = {
    "S2A_33TWN_20161202_0_L2A": 0.0,  # 00.01
    "S2A_33TWN_20171005_0_L2A": 0.0,  # 00.01
    "S2B_33TWN_20180521_1_L2A": 0.0,  # 02.07
    "S2B_33TWN_20180806_0_L2A": 0.0,  # 00.01
    "S2B_33TWN_20181005_0_L2A": 0.0,  # 02.08
    "S2B_33TWN_20181104_0_L2A": 0.0,  # 02.09
    "S2A_33TWN_20181119_0_L2A": 0.0,  # 02.10
    "S2B_33TWN_20190503_0_L2A": 0.0,  # 02.11
    "S2A_33TWN_20190707_1_L2A": 0.0,  # 02.12
    "S2A_33TWN_20200202_0_L2A": 0.0,  # 02.13
    "S2A_33TWN_20210328_0_L2A": 0.0,  # 02.14
    "S2A_33TWN_20210629_0_L2A": 0.0,  # 03.00
    "S2A_33TWN_20220122_0_L2A": 0.0,  # 03.01
    "S2B_33TWN_20220130_0_L2A": 0.0,  # 04.00, applied: DNs already harmonised
    "S2B_33TWN_20220226_0_L2A": -0.1,  # 04.00, not applied: DNs carry +1000
}


def test_earth_search_offsets_follow_baseline_and_applied_flag() -> None:
    features = [f for f in earth_search_s2() if "_33TWN_" in f["id"]]
    assert len(features) == 15
    result = normalize_items(features, ["blue", "red", "nir", "swir22"])
    offsets: dict[str, set[float]] = {}
    for item in result.items:
        for band in result.bands:
            raster = _raster(item, band)
            assert raster["scale"] == pytest.approx(1e-4)
            assert raster["nodata"] == 0
            offsets.setdefault(item.id, set()).add(raster["offset"])
        applied = item.properties["earthsearch:boa_offset_applied"]
        assert item.properties["cubehub:boa_offset_in_dn"] is (offsets[item.id] == {-0.1})
        assert ("boa_offset_applied" in item.properties["cubehub:scaling"]) is applied
    assert {k: v.pop() for k, v in offsets.items()} == EXPECTED_33TWN_OFFSETS
    assert all(len(v) == 0 for v in offsets.values())  # one offset for all bands of an item


def test_earth_search_applied_flag_overrides_metadata_offset() -> None:
    """S2A_32TMS_20221207: baseline 05.09, raster:bands say -0.1, applied: true -> 0."""
    (feature,) = [f for f in earth_search_s2() if f["id"] == "S2A_32TMS_20221207_0_L2A"]
    assert feature["assets"]["red"]["raster:bands"][0]["offset"] == -0.1
    (item,) = normalize_items([feature], ["red"]).items
    assert _raster(item, "red")["offset"] == 0.0
    assert item.properties["cubehub:boa_offset_in_dn"] is False


def test_planetary_computer_offset_from_baseline_or_date() -> None:
    result = normalize_items(pc_sentinel2(), ["red", "nir08"])
    for item in result.items:
        assert item.properties["s2:processing_baseline"] in ("05.10", "05.11")
        assert _raster(item, "red") == {"nodata": 0, "scale": 1e-4, "offset": -0.1}
        assert _raster(item, "nir08")["offset"] == -0.1
    old = normalize_items(
        [odc_single("S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json")], ["red"]
    ).items[0]
    assert _raster(old, "red")["offset"] == 0.0

    # Without any baseline in the metadata the acquisition date decides (2022-01-25).
    feature = pc_sentinel2()[0]
    for key in ("s2:processing_baseline", "s2:product_uri"):
        del feature["properties"][key]
    (after,) = normalize_items([feature], ["red"]).items
    assert _raster(after, "red")["offset"] == -0.1
    assert "baseline unknown" in after.properties["cubehub:scaling"]
    feature["properties"]["datetime"] = "2021-06-01T17:00:00Z"
    (before,) = normalize_items([feature], ["red"]).items
    assert _raster(before, "red")["offset"] == 0.0


def test_earth_search_v0_baseline_from_product_id() -> None:
    feature = odc_single("S2A_28QCH_20200714_0_L2A.json")  # ..._N0214_... -> 02.14
    (item,) = normalize_items([feature], ["red", "scl"]).items
    assert set(item.assets) == {"red", "scl"}
    assert _raster(item, "red") == {"nodata": 0, "scale": 1e-4, "offset": 0.0}
    assert item.properties["cubehub:scaling"] == "baseline 02.14 < 04.00"
    feature["properties"]["sentinel:product_id"] = feature["properties"][
        "sentinel:product_id"
    ].replace("_N0214_", "_N0400_")
    (item,) = normalize_items([feature], ["red"]).items
    assert _raster(item, "red")["offset"] == -0.1


def test_earth_search_and_planetary_computer_agree_on_the_same_place() -> None:
    """Same tile 13TDE: same band names and scale; each offset fits its own files' DNs."""
    es = normalize_items([earth_search_same_place()["sentinel-2-l2a"]])
    pc = normalize_items(pc_sentinel2()[:3])
    assert es.bands == pc.bands
    assert es.assets == pc.assets == (*pc.bands, "scl")
    es_item, pc_item = es.items[0], pc.items[0]
    assert es_item.properties["proj:epsg"] == pc_item.properties["proj:epsg"] == 32613
    for band in es.bands:
        es_r, pc_r = _raster(es_item, band), _raster(pc_item, band)
        assert es_r["scale"] == pc_r["scale"] == pytest.approx(1e-4)
        assert es_item.assets[band].extra_fields["proj:transform"][:6] == pytest.approx(
            pc_item.assets[band].extra_fields["proj:transform"][:6]
        ), band
        # A surface of reflectance 0.25: Earth Search (offset removed by the provider)
        # stores 2500, the Planetary Computer (baseline >= 04.00) stores 3500.
        assert 2500 * es_r["scale"] + es_r["offset"] == pytest.approx(0.25)
        assert 3500 * pc_r["scale"] + pc_r["offset"] == pytest.approx(0.25)

    es_ls = normalize_items([earth_search_same_place()["landsat-c2-l2"]])
    pc_ls = normalize_items(pc_landsat()[:3])
    assert es_ls.bands == pc_ls.bands
    for band in es_ls.bands:
        assert _raster(es_ls.items[0], band)["scale"] == _raster(pc_ls.items[0], band)["scale"]
        assert _raster(es_ls.items[0], band)["offset"] == _raster(pc_ls.items[0], band)["offset"]


def test_landsat_scaling_and_quality_band() -> None:
    result = normalize_items(pc_landsat())
    assert result.profile.mask_kind == "qa_pixel"
    assert result.bands == (
        "coastal",
        "blue",
        "green",
        "red",
        "nir08",
        "swir16",
        "swir22",
        "lwir11",
    )
    landsat7 = [i for i in result.items if i.properties["platform"] == "landsat-7"]
    assert [i.id for i in landsat7] == ["LE07_L2SP_034032_20231028_02_T2"]
    assert result.missing == {"LE07_L2SP_034032_20231028_02_T2": ("coastal",)}
    # Landsat 7's thermal asset is called "lwir" on the Planetary Computer.
    assert landsat7[0].assets["lwir11"].href.endswith("_ST_B6.TIF")
    for item in result.items:
        assert _raster(item, "qa_pixel")["nodata"] == 1
        for band in set(result.bands) & set(item.assets) - {"lwir11"}:
            raster = _raster(item, band)
            assert (raster["scale"], raster["offset"]) == (2.75e-5, -0.2)
        assert (_raster(item, "lwir11")["scale"], _raster(item, "lwir11")["offset"]) == (
            0.00341802,
            149.0,
        )
        transform = item.assets["red"].extra_fields["proj:transform"]
        assert transform[0] == 30 and transform[4] == -30
        assert item.assets["red"].extra_fields["proj:shape"] == item.properties["proj:shape"]


def test_usgs_and_legacy_landsat_layouts() -> None:
    (l8,) = normalize_items(
        [odc_single("LC08_L2SP_028030_20200114_20200824_02_T1_SR.json")], ["blue", "red"]
    ).items
    assert l8.assets["blue"].href.endswith("_SR_B2.TIF")  # Landsat 8: B2 is blue
    assert _raster(l8, "red") == {"nodata": 0, "scale": 2.75e-5, "offset": -0.2}
    assert l8.assets["qa_pixel"].href.endswith("_QA_PIXEL.TIF")
    (l7,) = normalize_items(
        [odc_single("LE07_L2SP_044033_20210329_20210424_02_T1_SR.json")], ["blue"]
    ).items
    assert l7.assets["blue"].href.endswith("_SR_B1.TIF")  # Landsat 7: B1 is blue
    assert l7.properties["proj:epsg"] == 32610

    legacy = normalize_items(pc_landsat8_legacy()[:20], ["blue", "nir08", "lwir11"])
    for item in legacy.items:
        assert item.assets["blue"].href.split("?")[0].endswith("_SR_B2.TIF")
        assert item.assets["nir08"].href.split("?")[0].endswith("_SR_B5.TIF")
        assert item.assets["qa_pixel"].href.split("?")[0].endswith("_QA_PIXEL.TIF")
        assert _raster(item, "lwir11")["offset"] == 149.0


def test_usgs_band_number_keys_resolve_by_eo_common_name() -> None:
    """USGS file-name keys (SR_B1..) mean different bands on Landsat 7 and 8: the
    eo:bands common name decides when the profile's keys are absent."""
    feature = odc_single("LE07_L2SP_044033_20210329_20210424_02_T1_SR.json")
    feature["assets"] = {
        f"SR_{a['eo:bands'][0]['name']}" if "eo:bands" in a else key.upper(): a
        for key, a in feature["assets"].items()
    }
    feature["assets"]["qa_pixel"] = feature["assets"].pop("QA_PIXEL")
    assert "SR_B1" in feature["assets"] and "blue" not in feature["assets"]
    (item,) = normalize_items([feature], ["blue", "nir08"]).items
    assert item.assets["blue"].href.endswith("_SR_B1.TIF")
    assert item.assets["nir08"].href.endswith("_SR_B4.TIF")


# -- CRS ----------------------------------------------------------------------------------


def test_crs_from_proj_code_and_wkt2() -> None:
    feature = earth_search_s2()[1]
    migrated = pystac.Item.from_dict(feature)  # pystac moves proj:epsg to proj:code
    assert "proj:epsg" not in migrated.properties
    assert migrated.properties["proj:code"] == "EPSG:32633"
    (item,) = normalize_items([migrated], ["red"]).items
    assert item.properties["proj:epsg"] == 32633
    assert item.assets["red"].extra_fields["proj:epsg"] == 32633

    from pyproj import CRS

    as_wkt = copy.deepcopy(feature)
    del as_wkt["properties"]["proj:epsg"]
    as_wkt["properties"]["proj:wkt2"] = CRS.from_epsg(32633).to_wkt()
    (item,) = normalize_items([as_wkt], ["red"]).items
    assert item.properties["proj:epsg"] == 32633

    custom = copy.deepcopy(as_wkt)
    custom["properties"]["proj:wkt2"] = CRS.from_proj4(
        "+proj=laea +lat_0=47 +lon_0=15.5 +x_0=0 +y_0=0 +ellps=GRS80 +units=m"
    ).to_wkt()
    result = normalize_items([custom], ["red"])
    assert result.without_epsg == (custom["id"],)
    assert result.items[0].properties["proj:epsg"] is None
    assert (
        "laea" in result.items[0].properties["proj:wkt2"].lower()
        or "Lambert" in (result.items[0].properties["proj:wkt2"])
    )
    assert result.epsg_codes == ()

    broken = copy.deepcopy(as_wkt)
    broken["properties"]["proj:wkt2"] = "PROJCRS[nonsense"
    with pytest.raises(InputError, match="proj:wkt2"):
        normalize_items([broken], ["red"])


# -- band selection and errors ------------------------------------------------------------


def test_band_selection_keeps_requested_bands_and_mask() -> None:
    result = normalize_items(pc_sentinel2()[:4], ["nir", "red", "red"])
    assert result.bands == ("nir", "red")
    assert result.assets == ("nir", "red", "scl")
    for item in result.items:
        assert set(item.assets) == {"nir", "red", "scl"}
        assert item.assets["nir"].href.endswith("_B08_10m.tif")
        assert item.assets["scl"].href.endswith("_SCL_20m.tif")
        assert item.assets["scl"].extra_fields["proj:shape"] == [5490, 5490]
        assert item.assets["red"].extra_fields["proj:shape"] == [10980, 10980]


def test_unknown_band_lists_valid_names() -> None:
    with pytest.raises(InputError, match=r"'nir2'.*valid names: coastal, blue, .*swir22, scl"):
        normalize_items(pc_sentinel2()[:2], ["red", "nir2"])
    with pytest.raises(InputError, match=r"'lwir11'.*valid names"):
        normalize_items(pc_sentinel2()[:2], ["lwir11"])
    with pytest.raises(InputError, match="no bands requested"):
        normalize_items(pc_sentinel2()[:2], [])


def test_band_that_no_item_has_is_an_error() -> None:
    l7 = odc_single("LE07_L2SP_044033_20210329_20210424_02_T1_SR.json")
    with pytest.raises(InputError, match="coastal are in none of the 1 items"):
        normalize_items([l7], ["coastal", "red"])
    no_mask = copy.deepcopy(l7)
    del no_mask["assets"]["qa_pixel"]
    with pytest.raises(InputError, match="quality band 'qa_pixel'"):
        normalize_items([no_mask])


def test_bad_inputs_are_input_errors() -> None:
    with pytest.raises(InputError, match="no items"):
        normalize_items([])
    with pytest.raises(InputError, match="expected STAC items"):
        normalize_items(["S2A_33TWN_20161202_0_L2A"])  # type: ignore[list-item]
    mixed = [pc_sentinel2()[0], pc_landsat()[0]]
    with pytest.raises(InputError, match="2 different collection layouts"):
        normalize_items(mixed)


# -- profiles -----------------------------------------------------------------------------


def test_profile_for_collection_ids_and_names() -> None:
    assert len({p.name for p in PROFILES}) == len(PROFILES)
    assert profile_for("sentinel-s2-l2a-cogs").name == "earth-search-v0/sentinel-s2-l2a-cogs"
    assert profile_for("landsat-8-c2-l2").mask.keys == ("QA_PIXEL",)
    assert profile_for("earth-search/sentinel-2-c1-l2a").band("red").keys == ("red",)
    pc_url = "https://planetarycomputer.microsoft.com/api/stac/v1"
    assert profile_for("sentinel-2-l2a", stac_url=pc_url).band("nir08").keys == ("B8A",)
    assert profile_for("landsat-c2-l2", stac_url=pc_url).name == "planetary-computer/landsat-c2-l2"
    with pytest.raises(InputError, match=r"several providers.*stac_url"):
        profile_for("sentinel-2-l2a")
    with pytest.raises(
        InputError, match=r"unknown collection 'sentinel-1-grd'; known .*landsat-c2-l2"
    ):
        profile_for("sentinel-1-grd")
    with pytest.raises(InputError, match=r"unknown band 'nir' .* valid names: coastal, blue"):
        profile_for("usgs/landsat-c2l2-sr").band("nir")


def test_profile_for_item_without_provider_links() -> None:
    """Items served from elsewhere (a local STAC API, a file): provider properties, then
    asset keys decide."""
    es = earth_search_s2()[0]
    es["links"] = [{"rel": "self", "href": "http://127.0.0.1:8080/items/x"}]
    assert profile_for(es).name == "earth-search/sentinel-2-l2a"
    for key in [k for k in es["properties"] if k.startswith("earthsearch:")]:
        del es["properties"][key]
    assert profile_for(es).name == "earth-search/sentinel-2-l2a"  # by asset keys
    pc = pc_sentinel2()[0]
    pc["links"] = []
    assert profile_for(pc).name == "planetary-computer/sentinel-2-l2a"
    pc["assets"] = {}
    with pytest.raises(InputError, match="matches no single known layout"):
        profile_for(pc)
    del pc["collection"]
    with pytest.raises(InputError, match="names no collection"):
        profile_for(pc)
    other = pc_landsat()[0]
    other["collection"] = "landsat-c2-l1"
    with pytest.raises(InputError, match="unknown collection 'landsat-c2-l1'"):
        normalize_items([other])


# -- duplicates and solar days ------------------------------------------------------------


def _reprocessing_pair() -> list[dict[str, Any]]:
    """The real ``_1_`` item of 2019-07-07 and the ``_0_`` it replaced (rebuilt from it)."""
    (v1,) = [f for f in earth_search_s2() if f["id"] == "S2A_33TWN_20190707_1_L2A"]
    v0 = copy.deepcopy(v1)
    v0["id"] = "S2A_33TWN_20190707_0_L2A"
    v0["properties"]["s2:sequence"] = "0"
    v0["properties"]["s2:generation_time"] = "2019-07-07T10:58:11.000000Z"
    for asset in v0["assets"].values():
        asset["href"] = asset["href"].replace("_1_L2A", "_0_L2A")
    return [v0, v1]


def test_reprocessings_deduplicate_to_the_latest() -> None:
    features = [*earth_search_s2(), *_reprocessing_pair()[:1]]
    for seed in range(3):
        random.Random(seed).shuffle(features)
        result = normalize_items(features, ["red"])
        assert result.duplicates == {"S2A_33TWN_20190707_0_L2A": "S2A_33TWN_20190707_1_L2A"}
        ids = [i.id for i in result.items]
        assert "S2A_33TWN_20190707_1_L2A" in ids and "S2A_33TWN_20190707_0_L2A" not in ids
        assert len(ids) == 16
    kept_all = normalize_items(features, ["red"], deduplicate=False)
    assert len(kept_all.items) == 17 and kept_all.duplicates == {}


def test_planetary_computer_reprocessing_keeps_later_generation() -> None:
    result = normalize_items(pc_sentinel2(), ["red"])
    assert result.duplicates == {
        "S2B_MSIL2A_20240530T174909_R141_T13TDE_20240530T231838": (
            "S2B_MSIL2A_20240530T174909_R141_T13TDE_20240531T000206"
        )
    }
    assert len(result.items) == 99
    assert len({i.datetime for i in result.items}) == 99


def test_two_orbits_over_one_tile_on_one_day_are_both_kept() -> None:
    """High latitudes: passes on adjacent orbits are different observations, not duplicates;
    they share the solar-day time so the cube merges them."""
    first = odc_single("S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json")
    second = copy.deepcopy(first)
    second["id"] = second["id"].replace("_R043_", "_R086_").replace("T212529", "T230529")
    second["properties"]["sat:relative_orbit"] = 86
    second["properties"]["datetime"] = "2019-06-29T23:05:29.024000Z"
    result = normalize_items([first, second], ["red"])
    assert result.duplicates == {}
    assert len(result.items) == 2
    assert result.items[0].datetime == result.items[1].datetime
    assert {i.properties["cubehub:acquired"] for i in result.items} == {
        "2019-06-29T21:25:29.024000Z",
        "2019-06-29T23:05:29.024000Z",
    }


def test_solar_day_uses_centroid_longitude() -> None:
    strip = odc_strip()
    assert {solar_day(f) for f in strip} == {date(2020, 6, 6)}
    assert solar_day(pystac.Item.from_dict(strip[0])) == date(2020, 6, 6)

    def at(when: str, west: float, east: float) -> date:
        return solar_day({"properties": {"datetime": when}, "bbox": [west, -1, east, 1]})

    # One morning overpass (10:30 local) over 155 E and 160 E: the UTC dates differ, the
    # solar day does not.
    assert at("2020-06-07T00:10:00Z", 154, 156) == date(2020, 6, 7)
    assert at("2020-06-06T23:50:00Z", 159, 161) == date(2020, 6, 7)
    assert at("2020-06-06T02:00:00Z", -152, -150) == date(2020, 6, 5)  # -10 h
    # A box across the antimeridian is centred on 179 W, not on 1 E.
    assert at("2020-06-07T10:00:00Z", 178, -176) == date(2020, 6, 6)
    geometry_only = {
        "properties": {"datetime": "2020-06-06T23:30:00Z"},
        "geometry": {"type": "Point", "coordinates": [151.0, 0.0]},
    }
    assert solar_day(geometry_only) == date(2020, 6, 7)
    with pytest.raises(InputError, match="neither bbox nor geometry"):
        solar_day({"id": "x", "properties": {"datetime": "2020-06-06T23:30:00Z"}})


def test_single_day_strip_stacks_to_one_time_step(no_network: None) -> None:
    result = normalize_items(odc_strip(), ["red", "green", "blue"])
    assert isinstance(result, NormalizedItems)
    assert len(result.items) == 9 and result.duplicates == {}
    assert len({i.properties["cubehub:tile"] for i in result.items}) == 9
    assert len({i.datetime for i in result.items}) == 1
    assert {i.properties["cubehub:solar_day"] for i in result.items} == {"2020-06-06"}

    stack = stackstac.stack(
        list(result.items),
        assets=["red", "green", "blue"],
        epsg=32735,
        resolution=10,
        dtype=np.dtype("uint16"),
        # stackstac 0.5.1 checks np.can_cast(type(fill_value), dtype): a Python int fails
        # under NumPy 2, a uint16 scalar passes.
        fill_value=np.uint16(0),
        rescale=False,
    )
    assert stack.shape == (9, 3, 90978, 10980)
    merged = stack.groupby("time").map(stackstac.mosaic, nodata=0)
    assert merged.shape == (1, 3, 90978, 10980)
    assert merged.dtype == np.uint16


def test_normalised_scaling_reproduces_the_synthetic_archive_truth(small_archive: Archive) -> None:
    """End to end through GDAL: the synthetic archive mixes baselines before and after
    04.00 with ``boa_offset_applied`` true and false, and a ``_0_``/``_1_`` pair; stacking
    the normalised items with stackstac's own rescaling must give the true reflectance."""
    archive = small_archive
    result = normalize_items(archive.item_dicts(str(archive.root)), ["red", "nir"])
    truth = archive.truth()
    assert list(result.duplicates) == truth.attrs["dropped_item_ids"]
    offsets = {_raster(i, "red")["offset"] for i in result.items}
    assert offsets == {0.0, -0.1}, "the archive should exercise both encodings"

    stack = stackstac.stack(
        list(result.items),
        assets=["red", "nir"],
        epsg=archive.epsg,
        resolution=archive.resolution,
        bounds=archive.bounds,
        snap_bounds=False,
        dtype=np.dtype("float64"),
        rescale=True,
    )
    assert [str(i) for i in stack.id.values] == list(truth.attrs["item_ids"])
    with dask.config.set(scheduler="synchronous"):
        for band in ("red", "nir"):
            got = stack.sel(band=band).values
            want = truth[band].values
            compared = np.isfinite(got) & truth.clear.values
            assert compared.sum() > 0.5 * compared.size
            np.testing.assert_allclose(got[compared], want[compared], atol=1e-9)
