"""The web page in a real browser (the system's headless Chromium), reached the way a
JupyterHub user reaches it: through jupyter-server-proxy at ``/user/<name>/proxy/<port>/``
of a real Jupyter server. The page loads, draws tiles where the store has data and none
where a tile is incomplete, and a click shows the pixel's profile with the store's values."""

from __future__ import annotations

import io
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from cubehub.demo.servers import free_port, start_server_process, stop_process
from cubehub.grid import pixel_index
from cubehub.maps.server import MapServer, serving
from cubehub.output.open import open_composite
from cubehub.testing.browser import headless_chromium

USER = "ana"
#: Seconds for the page to load its tiles (a loaded 2-core machine renders a tile in ~1 s).
WAIT_S = 120


@pytest.fixture(scope="module")
def server(partial_store: dict[str, Any]) -> Iterator[MapServer]:
    with serving([partial_store["url"]]) as running:
        yield running


@pytest.fixture(scope="module")
def hub_url(server: MapServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The page's URL through a Jupyter server's proxy, as JupyterHub serves a user's."""
    folder = tmp_path_factory.mktemp("jupyter")
    port = free_port()
    args = [
        sys.executable, "-m", "jupyter_server",
        f"--ServerApp.base_url=/user/{USER}/", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.open_browser=False", "--IdentityProvider.token=", "--ServerApp.password=",
        f"--ServerApp.root_dir={folder}", "--ServerApp.port_retries=0", "--allow-root",
    ]  # fmt: skip
    with (folder / "jupyter.log").open("wb") as log:
        process = start_server_process(args, log)
    base = f"http://127.0.0.1:{port}/user/{USER}/"
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            urllib.request.urlopen(base + "api/status", timeout=5).read()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                stop_process(process)
                pytest.fail(
                    f"jupyter server did not start: {(folder / 'jupyter.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
    try:
        yield f"{base}proxy/{server.server_address[1]}/"
    finally:
        stop_process(process)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with headless_chromium(tmp_path / "profile") as driver:
        yield driver


def screen_point(browser: WebDriver, lon: float, lat: float) -> tuple[int, int]:
    """Where (lon, lat) is on the screenshot: the map's container point plus the map's offset."""
    x, y = browser.execute_script(
        "const p = window.cubehubPage.map.latLngToContainerPoint([arguments[1], arguments[0]]);"
        "const r = document.getElementById('map').getBoundingClientRect();"
        "return [p.x + r.left, p.y + r.top];",
        lon,
        lat,
    )
    return round(x), round(y)


def test_page_tiles_and_profile_through_the_hub_proxy(
    browser: WebDriver, hub_url: str, partial_store: dict[str, Any], tmp_path: Path
) -> None:
    from pyproj import Transformer

    store: xr.Dataset = open_composite(partial_store["url"]).load()
    browser.get(hub_url)
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda b: b.execute_script("return document.body.dataset.tiles") == "loaded")
    assert browser.execute_script("return window.cubehubPage.tilesLoaded") > 0
    time.sleep(1.0)  # Leaflet fades tiles in over 0.2 s
    assert browser.find_element(By.ID, "status").text == ""
    layer = browser.execute_script("return document.body.dataset.layer")
    assert layer == "NDVI_p50_2021.12.02..2022.03.20"  # first variable, season; p50
    assert "2021-12-02 .. 2022-03-20" in browser.find_element(By.ID, "legend-season").text
    assert browser.find_element(By.ID, "legend-units").text == "(unitless)"

    shot = tmp_path / "page.png"
    browser.save_screenshot(str(shot))
    image = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")).astype(int)
    background = np.array([255, 255, 255])  # #map's background: what a blank tile shows
    to_lonlat = Transformer.from_crs(32633, 4326, always_xy=True)
    x, y = store.x.values, store.y.values
    ndvi = store["NDVI"].sel(season="2022-winter", percentile=50).values
    for row in range(4, 64, 8):
        for col in range(4, 64, 8):
            sx, sy = screen_point(browser, *to_lonlat.transform(x[col], y[row]))
            colour = image[sy, sx]
            if row >= 32 and col >= 32:
                assert (colour == background).all(), f"incomplete tile drawn at {row}, {col}"
            elif np.isfinite(ndvi[row, col]):
                assert (np.abs(colour - background) > 8).any(), f"no data drawn at {row}, {col}"

    # A click on a complete pixel, then on one of the incomplete tile.
    the_map = browser.find_element(By.ID, "map")
    rect = browser.execute_script(
        "return document.getElementById('map').getBoundingClientRect().toJSON()"
    )
    for row, col in ((10, 20), (45, 50)):
        sx, sy = screen_point(browser, *to_lonlat.transform(x[col], y[row]))
        browser.execute_script("document.getElementById('profile').dataset.ready = 'waiting'")
        ActionChains(browser).move_to_element_with_offset(
            the_map, sx - rect["left"] - rect["width"] / 2, sy - rect["top"] - rect["height"] / 2
        ).click().perform()
        wait.until(lambda b: b.find_element(By.ID, "profile").get_attribute("data-ready") == "1")
        lon, lat = browser.execute_script(
            "const r = document.getElementById('map').getBoundingClientRect();"
            "const ll = window.cubehubPage.map.containerPointToLatLng([arguments[0] - r.left, arguments[1] - r.top]);"
            "return [ll.lng, ll.lat];",
            sx,
            sy,
        )
        rows, cols = pixel_index([lon], [lat], 4326, 32633, store.rio.transform(), (64, 64))
        cells = browser.find_elements(By.CSS_SELECTOR, "#profile td[data-variable]")
        assert len(cells) == 4 * 3
        for cell in cells:
            season, q = (
                cell.get_attribute("data-season"),
                float(cell.get_attribute("data-percentile") or "nan"),
            )
            expected = float(
                store["NDVI"].sel(season=season, percentile=q).values[rows[0], cols[0]]
            )
            shown = cell.get_attribute("data-value")
            if np.isnan(expected):
                assert shown == "", (season, q)
            else:
                assert float(shown or "nan") == pytest.approx(expected, abs=1e-6), (season, q)
        assert (rows[0] >= 32 and cols[0] >= 32) == (row >= 32 and col >= 32)
    browser.save_screenshot(str(tmp_path / "profile.png"))  # kept in tmp_path for a look
