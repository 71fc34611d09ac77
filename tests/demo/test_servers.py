"""The loopback servers: HTTP range requests read by GDAL, and the rustac STAC API."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from cubehub.demo.servers import check_port, serve_files, serve_stac_api
from cubehub.errors import InputError


def test_range_requests_are_answered_partially(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 100
    (tmp_path / "blob.bin").write_bytes(payload)
    with serve_files(tmp_path) as files:
        req = urllib.request.Request(files.url + "/blob.bin", headers={"Range": "bytes=10-19"})
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 206
            assert resp.headers["Content-Range"] == f"bytes 10-19/{len(payload)}"
            assert resp.read() == payload[10:20]
        req = urllib.request.Request(files.url + "/blob.bin", headers={"Range": "bytes=-5"})
        with urllib.request.urlopen(req) as resp:
            assert resp.read() == payload[-5:]
        with urllib.request.urlopen(files.url + "/blob.bin") as resp:
            assert resp.status == 200 and resp.read() == payload
        assert files.stats.range_requests == 2
        assert files.stats.requests == 3


def test_gdal_reads_a_window_of_a_cog_through_range_requests(tmp_path: Path) -> None:
    data = np.arange(1024 * 1024, dtype=np.uint16).reshape(1024, 1024)
    profile = dict(
        driver="COG",
        width=1024,
        height=1024,
        count=1,
        dtype="uint16",
        crs="EPSG:32633",
        transform=rasterio.Affine(10, 0, 600000, 0, -10, 5200000),
        compress="deflate",
        blocksize=256,
    )
    with rasterio.open(tmp_path / "b.tif", "w", **profile) as dst:
        dst.write(data, 1)
    size = (tmp_path / "b.tif").stat().st_size
    with serve_files(tmp_path) as files, rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        with rasterio.open(f"/vsicurl/{files.url}/b.tif") as src:
            window = src.read(1, window=rasterio.windows.Window(0, 0, 256, 256))
        assert (window == data[:256, :256]).all()
        assert files.stats.range_requests >= 1
        assert files.stats.bytes_sent < size / 2, "GDAL should read only the blocks it needs"


def test_port_checks() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        with pytest.raises(InputError, match=f"port {busy} .* already in use"):
            check_port(busy)
    with pytest.raises(InputError, match="not a valid TCP port"):
        check_port(70000)
    check_port(0)


def test_stac_api_serves_items_and_stops(
    tmp_path: Path, earth_search_items: list[dict[str, Any]]
) -> None:
    items_file = tmp_path / "items.json"
    items_file.write_text(json.dumps({"type": "FeatureCollection", "features": earth_search_items}))
    with serve_stac_api(items_file) as api:
        with urllib.request.urlopen(
            api.url + "/collections/sentinel-2-l2a/items?limit=100"
        ) as resp:
            body = json.load(resp)
        assert {f["id"] for f in body["features"]} == {i["id"] for i in earth_search_items}
        process = api.process
    assert process.poll() is not None, "the STAC API process must be stopped on exit"


def test_a_killed_parent_leaves_no_stac_api_behind(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    items = tmp_path / "items.json"
    items.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    code = (
        "import sys, time, pathlib\n"
        "from cubehub.demo.servers import serve_stac_api\n"
        f"with serve_stac_api(pathlib.Path({str(items)!r})) as api:\n"
        "    print(api.process.pid, flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    server = int(parent.stdout.readline())
    assert psutil.pid_exists(server)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while (
        time.monotonic() < deadline
        and psutil.pid_exists(server)
        and psutil.Process(server).status() != "zombie"
    ):
        time.sleep(0.1)
    assert not psutil.pid_exists(server) or psutil.Process(server).status() == "zombie"
