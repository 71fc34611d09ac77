"""search_items against a real STAC API (rustac serve) loaded with real Earth Search items."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.config
import pytest

from cubehub.catalog.search import search_items
from cubehub.catalog.search_input import parse_datetime_range
from cubehub.demo.servers import serve_stac_api
from cubehub.errors import DataError, EmptySearchError, InputError


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, earth_search_items: list[dict[str, Any]]
) -> Iterator[str]:
    path = tmp_path_factory.mktemp("stac") / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": earth_search_items}))
    with serve_stac_api(path) as server:
        yield server.url


def _ids(items: list[Any]) -> list[str]:
    return [i.id for i in items]


def test_paging_returns_every_item_in_time_order(
    api: str, earth_search_items: list[dict[str, Any]]
) -> None:
    items = search_items(api, collections=["sentinel-2-l2a"], page_size=3)
    expected = sorted(earth_search_items, key=lambda i: (i["properties"]["datetime"], i["id"]))
    assert _ids(items) == [i["id"] for i in expected]


def test_max_items(api: str) -> None:
    assert len(search_items(api, collections=["sentinel-2-l2a"], page_size=2, max_items=5)) == 5


def test_bbox_and_datetime(api: str, earth_search_items: list[dict[str, Any]]) -> None:
    items = search_items(
        api, collections=["sentinel-2-l2a"], bbox=(15.9, 47.2, 16.0, 47.3), datetime="2022"
    )
    expected = sorted(
        i["id"]
        for i in earth_search_items
        if i["properties"]["datetime"].startswith("2022")
        and i["properties"]["grid:code"] == "MGRS-33TWN"
    )
    assert (
        sorted(_ids(items))
        == expected
        == ["S2A_33TWN_20220122_0_L2A", "S2B_33TWN_20220130_0_L2A", "S2B_33TWN_20220226_0_L2A"]
    )


def test_cloud_cover_filter_falls_back_to_the_client(
    api: str, earth_search_items: list[dict[str, Any]]
) -> None:
    # rustac conforms to neither the filter nor the query extension.
    items = search_items(api, collections=["sentinel-2-l2a"], max_cloud_cover=20)
    expected = sorted(
        i["id"] for i in earth_search_items if i["properties"]["eo:cloud_cover"] <= 20
    )
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
        ({"datetime": "2099-12-02/2100-12-01"}, "starts after today"),
    ],
)
def test_bad_input_is_refused_before_any_request(kwargs: dict[str, Any], message: str) -> None:
    # Port 9 (discard) is never a STAC API: failing here proves no request was made.
    with pytest.raises(InputError, match=message):
        search_items("http://127.0.0.1:9", collections=["sentinel-2-l2a"], **kwargs)


def test_unknown_collection_lists_the_available_ones(api: str) -> None:
    with pytest.raises(InputError, match=r"unknown collection sentinel-3.*sentinel-2-l2a"):
        search_items(api, collections=["sentinel-3"])


def test_unknown_collection_in_a_static_catalog_names_its_collections(
    tmp_path: Path, earth_search_items: list[dict[str, Any]]
) -> None:
    static = _write_item_collection(tmp_path / "items.json", earth_search_items)
    with pytest.raises(
        InputError, match=r"unknown collection sentinel-2-l1c in .*: sentinel-2-l2a$"
    ):
        search_items(str(static), collections=["sentinel-2-l1c"])


def test_a_source_from_the_environment(
    api: str, monkeypatch: pytest.MonkeyPatch, earth_search_items: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("CUBEHUB_TEST_STAC_API", api)
    found = search_items("env:CUBEHUB_TEST_STAC_API", collections=["sentinel-2-l2a"])
    assert len(found) == len(earth_search_items)
    monkeypatch.delenv("CUBEHUB_TEST_STAC_API")
    with pytest.raises(InputError, match="CUBEHUB_TEST_STAC_API, which is not set"):
        search_items("env:CUBEHUB_TEST_STAC_API", collections=["sentinel-2-l2a"])


def test_an_unreachable_api_is_named_without_its_password() -> None:
    with (
        dask.config.set({"cubehub.stac.retries": 0}),
        pytest.raises(
            DataError, match=r"cannot open the STAC API at http://\*\*\*@127.0.0.1:9"
        ) as info,
    ):
        search_items("http://alice:s3cret@127.0.0.1:9", collections=["sentinel-2-l2a"])
    assert "s3cret" not in str(info.value)


def test_empty_search(api: str) -> None:
    with pytest.raises(EmptySearchError, match="no items"):
        search_items(api, collections=["sentinel-2-l2a"], bbox=(-60, -10, -59, -9))


def test_unknown_shortcut() -> None:
    with pytest.raises(InputError, match="earth-search"):
        search_items("earth-serch", collections=["x"])


def test_datetime_ranges() -> None:
    start, end = parse_datetime_range("2022")
    assert start is not None and end is not None
    assert (start.isoformat(), end.date().isoformat()) == (
        "2022-01-01T00:00:00+00:00",
        "2022-12-31",
    )
    start, end = parse_datetime_range("../2022-03-20")
    assert (
        start is None
        and end is not None
        and end.isoformat().startswith("2022-03-20T23:59:59.999999")
    )


def _write_item_collection(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return path


def test_static_item_collection_gives_what_the_api_gives(
    api: str, tmp_path: Path, earth_search_items: list[dict[str, Any]]
) -> None:
    static = _write_item_collection(tmp_path / "items.json", earth_search_items)
    query: dict[str, Any] = {
        "collections": ["sentinel-2-l2a"],
        "bbox": (15.9, 47.2, 16.0, 47.3),
        "max_cloud_cover": 80,
    }
    assert _ids(search_items(str(static), **query)) == _ids(search_items(api, **query))


def test_static_items_served_over_http(
    tmp_path: Path, earth_search_items: list[dict[str, Any]]
) -> None:
    from cubehub.demo.servers import serve_files

    _write_item_collection(tmp_path / "items.json", earth_search_items)
    with serve_files(tmp_path) as files:
        items = search_items(
            f"{files.url}/items.json", collections=["sentinel-2-l2a"], datetime="2022"
        )
    expected = sorted(
        (i["properties"]["datetime"], i["id"])
        for i in earth_search_items
        if i["properties"]["datetime"].startswith("2022")
    )
    assert _ids(items) == [i for _, i in expected] and len(expected) == 4


def test_aoi_geojson_file(
    tmp_path: Path, api: str, earth_search_items: list[dict[str, Any]]
) -> None:
    aoi = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[7.9, 46.5], [8.0, 46.5], [8.0, 46.6], [7.9, 46.6], [7.9, 46.5]]
                    ],
                },
            }
        ],
    }
    (tmp_path / "aoi.geojson").write_text(json.dumps(aoi))
    items = search_items(
        api, collections=["sentinel-2-l2a"], intersects=str(tmp_path / "aoi.geojson")
    )
    assert _ids(items) == ["S2A_32TMS_20221207_0_L2A"]


def test_aoi_that_meets_no_item_is_an_empty_search(
    tmp_path: Path, earth_search_items: list[dict[str, Any]]
) -> None:
    static = _write_item_collection(tmp_path / "items.json", earth_search_items)
    far = {"type": "Point", "coordinates": [-120.0, 40.0]}
    with pytest.raises(EmptySearchError, match="no items"):
        search_items(str(static), collections=["sentinel-2-l2a"], intersects=far)


def test_missing_aoi_file() -> None:
    with pytest.raises(InputError, match=r"AOI file .* does not exist"):
        search_items("http://127.0.0.1:9", collections=["x"], intersects="/nonexistent/aoi.geojson")


def test_cql2_filter_is_evaluated_on_the_client_when_the_api_cannot(
    api: str, earth_search_items: list[dict[str, Any]]
) -> None:
    expr = {
        "op": "and",
        "args": [
            {"op": "=", "args": [{"property": "platform"}, "sentinel-2b"]},
            {"op": ">=", "args": [{"property": "datetime"}, {"timestamp": "2018-06-01T00:00:00Z"}]},
            {"op": "like", "args": [{"property": "s2:processing_baseline"}, "02.%"]},
        ],
    }
    items = search_items(api, collections=["sentinel-2-l2a"], filter=expr, max_cloud_cover=90)
    expected = sorted(
        i["id"]
        for i in earth_search_items
        if i["properties"]["platform"] == "sentinel-2b"
        and i["properties"]["datetime"] >= "2018-06-01"
        and i["properties"]["s2:processing_baseline"].startswith("02.")
        and i["properties"]["eo:cloud_cover"] <= 90
    )
    assert expected and sorted(_ids(items)) == expected


def test_unsupported_cql2_operator_is_refused() -> None:
    with pytest.raises(InputError, match=r"s_intersects.* is not supported"):
        search_items(
            "http://127.0.0.1:9", collections=["x"], filter={"op": "s_intersects", "args": []}
        )


def test_static_item_collection_in_a_bucket(
    s3_server: Any, monkeypatch: pytest.MonkeyPatch, earth_search_items: list[dict[str, Any]]
) -> None:
    import s3fs

    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    s3_server.create_bucket("catalogs")
    fs = s3fs.S3FileSystem(
        key=s3_server.access_key, secret=s3_server.secret_key, endpoint_url=s3_server.endpoint_url
    )
    fs.pipe(
        "catalogs/es/items.json",
        json.dumps({"type": "FeatureCollection", "features": earth_search_items}).encode(),
    )
    items = search_items(
        "s3://catalogs/es/items.json", collections=["sentinel-2-l2a"], datetime="2022-01"
    )
    assert _ids(items) == ["S2A_33TWN_20220122_0_L2A", "S2B_33TWN_20220130_0_L2A"]
