"""Loaders for the real STAC metadata in ``tests/data`` (its README says where each set
comes from and under which licence).

Every loader returns plain GeoJSON Feature dicts, fresh on each call, so a test may change
them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

REALDATA = Path(__file__).resolve().parent / "data"

Feature = dict[str, Any]


def _features(path: Path) -> list[Feature]:
    """The items of a FeatureCollection or single-item file, gzipped if it ends in ``.gz``."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    data = json.loads(raw)
    return list(data["features"]) if "features" in data else [data]


def earth_search_s2() -> list[Feature]:
    """16 Earth Search v1 sentinel-2-l2a items: 15 of tile 33TWN and one of 32TMS."""
    folder = REALDATA / "mapchete-eo" / "stac_items"
    return [json.loads(p.read_text()) for p in sorted(folder.iterdir())]


def pc_sentinel2() -> list[Feature]:
    """100 Planetary Computer sentinel-2-l2a items of tile 13TDE, 2024."""
    return _features(REALDATA / "pc-rustac" / "100-sentinel-2-items.derived.json.gz")


def pc_two_sentinel2() -> list[Feature]:
    """2 Planetary Computer sentinel-2-l2a items, verbatim API output."""
    return _features(REALDATA / "pc-rustac" / "two-sentinel-2-items.json")


def pc_landsat() -> list[Feature]:
    """100 Planetary Computer landsat-c2-l2 items (Landsat 8, 9 and one 7)."""
    return _features(REALDATA / "pc-rustac" / "100-landsat-items.derived.json.gz")


def pc_landsat8_legacy() -> list[Feature]:
    """250 items of the legacy Planetary Computer landsat-8-c2-l2 collection (SR_B* keys)."""
    return _features(REALDATA / "pystac-client" / "landsat-8-c2-l2-legacy.items.json.gz")


def pc_landsat_recent() -> list[Feature]:
    """10 current Planetary Computer landsat-c2-l2 items."""
    return _features(REALDATA / "pystac-client" / "landsat-c2-l2-recent.items.json.gz")


def earth_search_same_place() -> dict[str, Feature]:
    """One Earth Search v1 sentinel-2-l2a and one landsat-c2-l2 item over the pc-rustac
    point, by collection id."""
    return {
        f["collection"]: f
        for f in _features(REALDATA / "pystac-client" / "earth-search-same-place.items.json.gz")
    }


def odc_strip() -> list[Feature]:
    """9 Planetary Computer S2 items of one orbit on 2020-06-06, a north-south strip."""
    return _features(REALDATA / "odc-stac" / "site1-20200606-tall-strip-africa.geojson")


def odc_site2() -> list[Feature]:
    """13 Planetary Computer S2 items of tile 35MNM, June-July 2020 (baseline 02.12)."""
    return _features(REALDATA / "odc-stac" / "site2-2020_jun_jul-35MNM.geojson")


def odc_single(name: str) -> Feature:
    """One single-item JSON file from ``odc-stac/``."""
    return _features(REALDATA / "odc-stac" / name)[0]


#: Every item set, split by collection: name -> (loader, expected profile name).
ITEM_SETS: dict[str, tuple[Any, str]] = {
    "earth-search-s2": (earth_search_s2, "earth-search/sentinel-2-l2a"),
    "pc-s2-100": (pc_sentinel2, "planetary-computer/sentinel-2-l2a"),
    "pc-s2-two": (pc_two_sentinel2, "planetary-computer/sentinel-2-l2a"),
    "pc-landsat-100": (pc_landsat, "planetary-computer/landsat-c2-l2"),
    "pc-landsat8-legacy": (pc_landsat8_legacy, "planetary-computer/landsat-8-c2-l2"),
    "pc-landsat-recent": (pc_landsat_recent, "planetary-computer/landsat-c2-l2"),
    "es-s2-same-place": (
        lambda: [earth_search_same_place()["sentinel-2-l2a"]],
        "earth-search/sentinel-2-l2a",
    ),
    "es-landsat-same-place": (
        lambda: [earth_search_same_place()["landsat-c2-l2"]],
        "earth-search/landsat-c2-l2",
    ),
    "odc-strip": (odc_strip, "planetary-computer/sentinel-2-l2a"),
    "odc-site2": (odc_site2, "planetary-computer/sentinel-2-l2a"),
    "odc-pc-06VVN": (
        lambda: [odc_single("S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json")],
        "planetary-computer/sentinel-2-l2a",
    ),
    "odc-es-v0": (
        lambda: [odc_single("S2A_28QCH_20200714_0_L2A.json")],
        "earth-search-v0/sentinel-s2-l2a-cogs",
    ),
    "odc-usgs-l8": (
        lambda: [odc_single("LC08_L2SP_028030_20200114_20200824_02_T1_SR.json")],
        "usgs/landsat-c2l2-sr",
    ),
    "odc-usgs-l7": (
        lambda: [odc_single("LE07_L2SP_044033_20210329_20210424_02_T1_SR.json")],
        "usgs/landsat-c2l2-sr",
    ),
}
