"""``cubehub serve`` over real HTTP: stores.json, tiles in both tile matrix sets (coloured from
the store's values, transparent where a tile is incomplete), TileJSON, WMTS read by GDAL's
WMTS driver, pixel profiles, errors, and tiles that follow the completion records."""

from __future__ import annotations

import io
import json
import shutil
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import morecantile
import numpy as np
import pytest
import rasterio
import xarray as xr
from PIL import Image

from cubehub.maps.layers import REFRESH_S
from cubehub.maps.server import MapServer, serving
from cubehub.maps.style import style_of
from cubehub.output.open import open_composite

LAYER = "red_p50_2022.06.25..2022.09.12"


@pytest.fixture(scope="module")
def server(partial_store: dict[str, Any]) -> Iterator[MapServer]:
    with serving([partial_store["url"]]) as running:
        yield running


@pytest.fixture(scope="module")
def store(partial_store: dict[str, Any]) -> xr.Dataset:
    """The store in memory (64 x 64 px), incomplete tiles hidden: the expected values."""
    return open_composite(partial_store["url"]).load()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())


def rgba(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def test_stores_json_lists_layers_styles_and_seasons(server: MapServer) -> None:
    status, body = get(server.url + "stores.json")
    assert status == 200
    (store,) = json.loads(body)["stores"]
    assert store["name"] == "composite"
    assert store["tile_matrix_sets"] == ["WebMercatorQuad", "EPSG32633-10m"]
    assert len(store["layers"]) == 4 * (3 * 3 + 1)
    assert store["variables"]["NDVI"]["colormap"] == "RdYlGn"
    assert store["variables"]["NDVI"]["range"] == [-1.0, 1.0]
    assert store["variables"]["red"]["units"] == "1"
    assert len(store["variables"]["red"]["legend"]) == 11
    assert store["seasons"][0] == {
        "label": "2022-winter",
        "start": "2021-12-02",
        "end": "2022-03-20",
        "year": "2022",
        "name": "winter",
    }


def test_native_tiles_are_the_store_coloured_and_blank_where_incomplete(
    server: MapServer, store: xr.Dataset
) -> None:
    status, png = get(server.url + f"composite/layers/{LAYER}/tiles/EPSG32633-10m/0/0/0.png")
    assert status == 200
    image = rgba(png)
    assert image.shape == (256, 256, 4)
    values = store["red"].sel(season="2022-summer", percentile=50).values  # 64 x 64
    style = style_of("red", store["red"].attrs)
    table = np.array([style.table()[k] for k in range(256)])
    written = np.isfinite(values)
    written[32:, 32:] = False
    assert written.sum() > 3 * 32 * 32 * 0.9
    alpha = image[:64, :64, 3]
    assert (alpha[32:, 32:] == 0).all(), "the incomplete tile must be blank"
    assert (alpha[written] == 255).all()
    assert (image[64:, :, 3] == 0).all() and (image[:, 64:, 3] == 0).all(), "off the grid: blank"
    # The colour of each pixel is the colour map at the rescaled value (0..0.4 -> 0..255).
    index = np.clip((values[written] - style.low) / (style.high - style.low) * 255, 0, 255)
    got = image[:64, :64, :3][written].astype(int)
    near = [
        np.abs(table[np.clip(index.astype(int) + d, 0, 255), :3] - got).max(axis=1) for d in (0, 1)
    ]
    assert (np.minimum(*near) == 0).all()


def test_web_mercator_tiles_drawn_over_data_blank_over_the_incomplete_tile(
    server: MapServer, store: xr.Dataset
) -> None:
    tms = morecantile.tms.get("WebMercatorQuad")
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(32633, 4326, always_xy=True)
    x, y = store.x.values, store.y.values
    for (row, col), drawn in (((16, 16), True), ((48, 48), False)):  # NW and SE quarters
        lon, lat = to_lonlat.transform(x[col], y[row])
        tile = tms.tile(lon, lat, 18)
        status, png = get(
            server.url + f"composite/layers/{LAYER}/tiles/WebMercatorQuad/18/{tile.x}/{tile.y}.png"
        )
        assert status == 200
        alpha = rgba(png)[..., 3]
        assert (alpha == 255).mean() > 0.9 if drawn else (alpha == 0).all()


def test_tilejson_and_wmts_use_the_proxy_prefix(server: MapServer) -> None:
    headers = {
        "Host": "hub.example.org",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Prefix": "/user/ana/proxy/8000",
    }
    status, body = get(server.url + f"composite/layers/{LAYER}/tilejson.json", headers)
    assert status == 200
    doc = json.loads(body)
    assert doc["tilejson"] == "3.0.0" and doc["minzoom"] == 0 and doc["maxzoom"] == 24
    assert doc["tiles"] == [
        f"https://hub.example.org/user/ana/proxy/8000/composite/layers/{LAYER}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png"
    ]
    assert "2022-06-25..2022-09-12" in doc["description"]
    status, body = get(server.url + f"composite/layers/{LAYER}/tilejson.json?tms=EPSG32633-10m")
    assert json.loads(body)["crs"] == "EPSG:32633"
    status, xml = get(server.url + "composite/wmts/WMTSCapabilities.xml", headers)
    assert status == 200
    ns = {"w": "http://www.opengis.net/wmts/1.0", "ows": "http://www.opengis.net/ows/1.1"}
    root = ET.fromstring(xml)
    layers = root.findall("w:Contents/w:Layer", ns)
    assert len(layers) == 40
    ids = [layer.findtext("ows:Identifier", "", ns) for layer in layers]
    assert LAYER in ids
    sets = [
        s.findtext("ows:Identifier", "", ns) for s in root.findall("w:Contents/w:TileMatrixSet", ns)
    ]
    assert sets == ["WebMercatorQuad", "EPSG32633-10m"]
    resource = layers[ids.index(LAYER)].find("w:ResourceURL", ns)
    assert resource is not None
    template = resource.get("template", "")
    assert template.startswith("https://hub.example.org/user/ana/proxy/8000/composite/")
    assert template.endswith("/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.png")


def test_gdal_reads_the_layer_through_wmts(server: MapServer, store: xr.Dataset) -> None:
    caps = f"WMTS:{server.url}composite/wmts/WMTSCapabilities.xml,layer={LAYER},tilematrixset=EPSG32633-10m"
    with rasterio.open(caps) as src:
        assert src.crs.to_epsg() == 32633
        assert src.res == (10.0, 10.0)
        assert (src.bounds.left, src.bounds.top) == (float(store.x[0]) - 5, float(store.y[0]) + 5)
        image = src.read(window=((0, 64), (0, 64)))
    alpha = image[3]
    assert (alpha[32:, 32:] == 0).all() and (alpha[:32, :32] == 255).mean() > 0.9


def test_profile_equals_the_store(server: MapServer, store: xr.Dataset) -> None:
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(32633, 4326, always_xy=True)
    for row, col in ((5, 40), (50, 50)):
        lon, lat = to_lonlat.transform(float(store.x[col]), float(store.y[row]))
        status, body = get(server.url + f"composite/profile?lon={lon}&lat={lat}")
        assert status == 200
        profile = json.loads(body)
        assert (profile["row"], profile["col"]) == (row, col)
        complete = [s["complete"] for s in profile["seasons"]]
        assert complete == [not (row >= 32 and col >= 32)] * 4
        for name, entry in profile["variables"].items():
            expected = store[name].isel(y=row, x=col).values.reshape(4, -1)
            got = np.array([[np.nan if v is None else v for v in r] for r in entry["values"]])
            np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0, err_msg=name)


def test_errors_say_what_is_wrong(server: MapServer) -> None:
    status, body = get(server.url + "composite/layers/nope/tilejson.json")
    assert status == 404 and "has no layer 'nope'" in json.loads(body)["error"]
    status, body = get(server.url + f"composite/layers/{LAYER}/tiles/EPSG32633-10m/3/0/0.png")
    assert status == 404 and "zoom levels 0..0" in json.loads(body)["error"]
    status, body = get(server.url + "composite/profile?lon=east")
    assert status == 400 and "lon and lat" in json.loads(body)["error"]
    status, body = get(server.url + "composite/profile?lon=0&lat=0")
    assert status == 404 and "off the store's grid" in json.loads(body)["error"]
    status, _ = get(server.url + "static/../../../../etc/passwd")
    assert status == 404


def test_tiles_follow_the_completion_records(partial_store: dict[str, Any], tmp_path: Path) -> None:
    copy = tmp_path / "composite.zarr"
    shutil.copytree(partial_store["url"], copy)
    with serving([str(copy)]) as running:
        url = running.url + f"composite/layers/{LAYER}/tiles/EPSG32633-10m/0/0/0.png"
        assert (rgba(get(url)[1])[:32, :32, 3] == 255).mean() > 0.9
        for record in copy.glob("cubehub-complete/*/r0000c0000.json"):
            record.unlink()
        time.sleep(REFRESH_S + 0.5)
        assert (rgba(get(url)[1])[:32, :32, 3] == 0).all()
