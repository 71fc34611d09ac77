"""Search input a new user gets wrong, and static catalogs laid out the standard way.

Each case once gave a silently wrong search or a cryptic error; now it gives the right
items or an error that names the likely fix, before any request.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pystac
import pytest

from cubehub.catalog.search import search_items
from cubehub.catalog.search_input import check_cloud_cover, parse_datetime_range
from cubehub.cube import load_cube
from cubehub.errors import EmptySearchError, InputError

COLLECTION = "sentinel-2-l2a"


@pytest.fixture(scope="module")
def self_contained(small_archive: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo archive with a catalog.json and an items.json, hrefs all relative."""
    root = tmp_path_factory.mktemp("self-contained") / "archive"
    shutil.copytree(small_archive.root, root)
    item_files = sorted(root.glob("**/*_L2A.json"))
    assert item_files, "the archive stores one JSON per item beside its assets"
    catalog = {
        "type": "Catalog",
        "id": "demo",
        "stac_version": "1.0.0",
        "description": "self-contained demo catalog",
        "links": [
            {"rel": "root", "href": "./catalog.json", "type": "application/json"},
            *(
                {"rel": "item", "href": f"./{p.relative_to(root)}", "type": "application/json"}
                for p in item_files
            ),
        ],
    }
    (root / "catalog.json").write_text(json.dumps(catalog))
    features = []
    for path in item_files:
        item = json.loads(path.read_text())
        folder = path.parent.relative_to(root)
        for asset in item["assets"].values():
            assert asset["href"].startswith("./")  # relative to the item, as stored
            asset["href"] = f"{folder}/{asset['href'][2:]}"  # now relative to items.json
        features.append(item)
    (root / "items.json").write_text(
        json.dumps({"type": "FeatureCollection", "features": features})
    )
    return root


@pytest.mark.parametrize("name", ["catalog.json", "items.json"])
def test_relative_asset_hrefs_read_from_a_self_contained_catalog(
    self_contained: Path, small_archive: Any, name: str
) -> None:
    items = search_items(
        str(self_contained / name),
        collections=COLLECTION,
        bbox=small_archive.bbox_lonlat(),
        datetime="2022-06-25/2022-07-15",
    )
    assert items and all(Path(i.assets["red"].href).is_absolute() for i in items)
    cube = load_cube(items, ["red"], bbox=small_archive.bbox_lonlat(), epsg=small_archive.epsg)
    with dask.config.set(scheduler="threads"):
        red = cube["red"].compute().values
    assert (red > 0).mean() > 0.3


def test_a_bbox_given_latitude_first_names_the_swap(
    self_contained: Path, small_archive: Any
) -> None:
    west, south, east, north = small_archive.bbox_lonlat()
    with pytest.raises(EmptySearchError, match="swap latitude and longitude") as info:
        search_items(
            str(self_contained / "items.json"),
            collections=[COLLECTION],
            bbox=(south, west, north, east),
        )
    assert f"{west}" in str(info.value)


def test_collections_as_one_string(self_contained: Path) -> None:
    one = search_items(str(self_contained / "items.json"), collections=COLLECTION, max_items=2)
    assert [i.collection_id for i in one] == [COLLECTION] * 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"datetime": "02.12.2021/01.12.2022"}, "write 2021-12-02"),
        ({"datetime": "12/02/2021"}, "one date or 'start/end'"),
        ({"datetime": "March 2022"}, "year first"),
        ({"max_cloud_cover": 0.8}, "did you mean 80?"),
        ({"bbox": (15.4, 47.0, 15.5)}, "4 numbers (west, south, east, north), got 3"),
        ({"bbox": "15.4,47.0,15.5,47.1"}, "bbox must be 4 numbers"),
        ({"bbox": (47.0, 95.4, 47.1, 95.5)}, "latitudes must lie within -90..90"),
        ({"collections": []}, "collection ids"),
    ],
)
def test_likely_mistakes_are_refused_before_any_request(
    kwargs: dict[str, Any], message: str
) -> None:
    query: dict[str, Any] = {"collections": [COLLECTION]} | kwargs
    with pytest.raises(InputError) as info:
        search_items("http://127.0.0.1:9", **query)  # nothing listens there
    assert message in str(info.value)


def test_iso_dates_still_read_as_before() -> None:
    start, end = parse_datetime_range("2021-12-02/2022-12-01")
    assert start is not None and end is not None
    assert (start.isoformat(), end.date().isoformat()) == (
        "2021-12-02T00:00:00+00:00",
        "2022-12-01",
    )
    start, _ = parse_datetime_range("2022-03-21T10:00:00+02:00/..")
    assert start is not None and start.hour == 8
    assert check_cloud_cover(0) == 0.0 and check_cloud_cover(80) == 80.0
    assert np.isclose(check_cloud_cover(1) or 0, 1.0)


def test_static_items_keep_absolute_hrefs(tmp_path: Path, small_archive: Any) -> None:
    path = small_archive.write_item_collection(tmp_path / "items.json", "http://127.0.0.1:9")
    items = search_items(str(path), collections=[COLLECTION], max_items=1)
    assert items[0].assets["red"].href.startswith("http://127.0.0.1:9/")
    assert isinstance(items[0], pystac.Item)
