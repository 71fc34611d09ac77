"""search_items against a real STAC API (rustac serve) loaded with real Earth Search items."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cubehub.errors import EmptySearchError, InputError
from cubehub.search import parse_datetime_range, search_items
from cubehub.testing.servers import serve_stac_api


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, earth_search_items: list[dict]) -> Iterator[str]:
    path = tmp_path_factory.mktemp("stac") / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": earth_search_items}))
    with serve_stac_api(path) as server:
        yield server.url


def _ids(items: list[Any]) -> list[str]:
    return [i.id for i in items]


def test_paging_returns_every_item_in_time_order(api: str, earth_search_items: list[dict]) -> None:
    items = search_items(api, collections=["sentinel-2-l2a"], page_size=3)
    expected = sorted(earth_search_items, key=lambda i: (i["properties"]["datetime"], i["id"]))
    assert _ids(items) == [i["id"] for i in expected]


def test_max_items(api: str) -> None:
    assert len(search_items(api, collections=["sentinel-2-l2a"], page_size=2, max_items=5)) == 5


def test_bbox_and_datetime(api: str, earth_search_items: list[dict]) -> None:
    items = search_items(api, collections=["sentinel-2-l2a"], bbox=(15.9, 47.2, 16.0, 47.3), datetime="2022")
    expected = sorted(
        i["id"] for i in earth_search_items
        if i["properties"]["datetime"].startswith("2022") and i["properties"]["grid:code"] == "MGRS-33TWN"
    )
    assert sorted(_ids(items)) == expected == [
        "S2A_33TWN_20220122_0_L2A", "S2B_33TWN_20220130_0_L2A", "S2B_33TWN_20220226_0_L2A"
    ]


def test_cloud_cover_filter_falls_back_to_the_client(api: str, earth_search_items: list[dict]) -> None:
    # rustac conforms to neither the filter nor the query extension.
    items = search_items(api, collections=["sentinel-2-l2a"], max_cloud_cover=20)
    expected = sorted(i["id"] for i in earth_search_items if i["properties"]["eo:cloud_cover"] <= 20)
    assert 0 < len(expected) < len(earth_search_items)
    assert sorted(_ids(items)) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bbox": (16, 47, 15, 48)}, "west .* must be less than east"),
        ({"bbox": (15, 47, 16, 95)}, "latitudes must lie within -90..90"),
        ({"datetime": "2022-05-01/2022-01-01"}, "ends before it starts"),
        ({"datetime": "last tuesday"}, "cannot read"),
        ({"max_cloud_cover": 120}, "within 0..100"),
    ],
)
def test_bad_input_is_refused_before_any_request(kwargs: dict, message: str) -> None:
    # Port 9 (discard) is never a STAC API: failing here proves no request was made.
    with pytest.raises(InputError, match=message):
        search_items("http://127.0.0.1:9", collections=["sentinel-2-l2a"], **kwargs)


def test_unknown_collection_lists_the_available_ones(api: str) -> None:
    with pytest.raises(InputError, match="unknown collection sentinel-3.*sentinel-2-l2a"):
        search_items(api, collections=["sentinel-3"])


def test_empty_search(api: str) -> None:
    with pytest.raises(EmptySearchError, match="no items"):
        search_items(api, collections=["sentinel-2-l2a"], bbox=(-60, -10, -59, -9))


def test_unknown_shortcut() -> None:
    with pytest.raises(InputError, match="earth-search"):
        search_items("earth-serch", collections=["x"])


def test_datetime_ranges() -> None:
    start, end = parse_datetime_range("2022")
    assert (start.isoformat(), end.date().isoformat()) == ("2022-01-01T00:00:00+00:00", "2022-12-31")
    start, end = parse_datetime_range("../2022-03-20")
    assert start is None and end.isoformat().startswith("2022-03-20T23:59:59.999999")
