"""Reading pixels: SAS tokens fetched at read time, and the failed-read policy."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cloudpickle
import dask
import pytest
from distributed import Client

from cubehub.cube import load_cube
from cubehub.demo.archive import Archive
from cubehub.demo.servers import serve_files
from cubehub.errors import AssetReadError
from cubehub.reader import SasTokenSigner, missing_assets

BANDS = ["red", "nir"]


class TokenServer:
    """A SAS token endpoint like Planetary Computer's, on loopback, counting requests."""

    def __init__(self, lifetime: timedelta) -> None:
        self.lifetime = lifetime
        self.issued: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                token = f"sv=2026&sig=token{len(server.issued)}"
                server.issued.append(self.path)
                expiry = (datetime.now(UTC) + server.lifetime).isoformat().replace("+00:00", "Z")
                body = json.dumps({"token": token, "msft:expiry": expiry}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/sas/v1/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def token_server() -> Iterator[TokenServer]:
    server = TokenServer(lifetime=timedelta(minutes=45))
    yield server
    server.close()


def _items(archive: Archive, base_url: str, n: int = 6) -> list[dict[str, Any]]:
    return archive.item_dicts(base_url)[:n]


def _container(href: str) -> str:
    return "sentinel2l2a01/sentinel2-l2"


def test_hrefs_are_signed_when_read_not_when_the_graph_is_built(
    small_archive: Any, token_server: TokenServer
) -> None:
    signer = SasTokenSigner(token_url=token_server.url, container_of=_container)
    with serve_files(small_archive.root) as files:
        cube = load_cube(
            _items(small_archive, files.url), BANDS, bbox=small_archive.bbox_lonlat(), signer=signer
        )
        assert token_server.issued == [], "building the cube must not fetch a token"
        # distributed ships graphs with cloudpickle; the token must not be in them.
        assert b"sig=token" not in cloudpickle.dumps(dict(cube.__dask_graph__()))
        with dask.config.set(scheduler="threads"):
            cube.to_array().sum().compute()
        assert token_server.issued == ["/api/sas/v1/token/sentinel2l2a01/sentinel2-l2"], (
            "one token, cached"
        )
        assert files.stats.queries and all(q == "sv=2026&sig=token0" for q in files.stats.queries)


def test_a_token_about_to_expire_is_renewed(small_archive: Any) -> None:
    server = TokenServer(lifetime=timedelta(minutes=4))  # inside the 5-minute renewal margin
    try:
        signer = SasTokenSigner(token_url=server.url, container_of=lambda h: "acct/short-lived")
        with serve_files(small_archive.root) as files:
            cube = load_cube(
                _items(small_archive, files.url, 2),
                ["red"],
                bbox=small_archive.bbox_lonlat(),
                signer=signer,
            )
            with dask.config.set(scheduler="sync"):
                cube.to_array().sum().compute()
        assert len(server.issued) >= 2, "each reader should fetch a fresh token"
    finally:
        server.close()


@pytest.fixture
def archive_missing_a_file(
    small_archive: Archive, tmp_path: Path
) -> tuple[dict[str, Any], Path, str]:
    root = tmp_path / "archive"
    shutil.copytree(small_archive.root, root)
    item = small_archive.item_dicts("http://base")[2]
    rel = item["assets"]["red"]["href"].removeprefix("http://base/")
    (root / rel).unlink()
    return item, root, rel


def test_a_failed_read_stops_the_job_naming_the_href(
    small_archive: Any, archive_missing_a_file: tuple[dict[str, Any], Path, str]
) -> None:
    _, root, rel = archive_missing_a_file
    with serve_files(root) as files:
        cube = load_cube(_items(small_archive, files.url), BANDS, bbox=small_archive.bbox_lonlat())
        with dask.config.set(scheduler="threads"), pytest.raises(AssetReadError, match=rel):
            cube.to_array().sum().compute()


def test_missing_assets_are_counted_when_allowed(
    small_archive: Any,
    archive_missing_a_file: tuple[dict[str, Any], Path, str],
    local_client: Client,
) -> None:
    item, root, rel = archive_missing_a_file
    client = local_client
    with serve_files(root) as files:
        cube = load_cube(
            _items(small_archive, files.url),
            BANDS,
            bbox=small_archive.bbox_lonlat(),
            on_read_error="missing",
        )
        red = client.compute(cube["red"]).result()
        assert missing_assets(client) == [f"{files.url}/{rel}"]
    times = [str(t) for t in cube.id.values]
    assert (red[times.index(item["id"])] == 0).all(), "the missing asset reads as nodata"
    assert (red[times.index(item["id"]) + 1] != 0).any()
