"""``cubehub serve``: map tiles, TileJSON, WMTS capabilities, pixel profiles and the web page of
one or more stores, over HTTP.

Routes (all relative to where the server is reached, so that it works behind JupyterHub's
``/user/<name>/proxy/<port>/``):

=================================================  ===========================================
``/``                                              the web page (``static/index.html``)
``static/<file>``                                  its script, styles and the map library
``stores.json``                                    every store: variables, styles, seasons, layers
``<store>/layers/<layer>/tiles/<tms>/<z>/<x>/<y>.png``  a 256 px tile (transparent: no data)
``<store>/layers/<layer>/tilejson.json?tms=<tms>``  TileJSON 3.0 (default tms WebMercatorQuad)
``<store>/wmts/WMTSCapabilities.xml``              OGC WMTS 1.0 capabilities (RESTful)
``<store>/tilematrixsets/<tms>.json``              an OGC TileMatrixSet 2.0 document
``<store>/profile?lon=<deg>&lat=<deg>``            a pixel's seasonal profile (JSON)
=================================================  ===========================================

A layer id is the ODSE layer name (``red_p50_2021.12.02..2022.03.20``); ``<tms>`` is
``WebMercatorQuad`` or the store's own grid (``EPSG32633-10m``). Absolute URLs in TileJSON
and WMTS documents come from ``public_url`` when given, else from the request (``Host``,
``X-Forwarded-Proto`` and the ``X-Forwarded-Prefix`` that jupyter-server-proxy sends).

The server is the standard library's threading HTTP server: one thread per request, each
reading the chunks its tile needs (no Dask cluster); it is meant for one person or a team
exploring results, not as a public tile service.
"""

from __future__ import annotations

import json
import mimetypes
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cubehub.errors import CubehubError, InputError, NotFoundError, ServerError
from cubehub.maps.assets import static_dir
from cubehub.maps.capabilities import tilejson, wmts_capabilities
from cubehub.maps.layers import ServedStore
from cubehub.maps.point_profile import pixel_profile
from cubehub.maps.render import render_tile
from cubehub.maps.tms import WEB_MERCATOR

__all__ = ["MapServer", "open_stores", "serving"]


def open_stores(urls: Sequence[str]) -> dict[str, ServedStore]:
    """Open each store once, named uniquely (``composite``, ``composite-2``, ...).

    Raises:
        InputError: no URL, or one that is not a composite store.
    """
    if not urls:
        raise InputError("give at least one store to serve")
    stores: dict[str, ServedStore] = {}
    for url in urls:
        store = ServedStore(url)
        name, k = store.name, 1
        while name in stores:
            k += 1
            name = f"{store.name}-{k}"
        store.name = name
        stores[name] = store
    return stores


class MapServer(ThreadingHTTPServer):
    """The HTTP server; :func:`serving` runs one in a thread."""

    daemon_threads = True

    def __init__(
        self,
        stores: dict[str, ServedStore],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        public_url: str | None = None,
    ) -> None:
        self.stores = stores
        self.static = static_dir()
        self.public_url = public_url.rstrip("/") + "/" if public_url else None
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            raise ServerError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
            ) from None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"


@contextmanager
def serving(
    urls: Sequence[str], host: str = "127.0.0.1", port: int = 0, public_url: str | None = None
) -> Iterator[MapServer]:
    """Serve ``urls`` in a background thread; stopped on exit. Its address: ``server.url``."""
    server = MapServer(open_stores(urls), host, port, public_url=public_url)
    thread = threading.Thread(target=server.serve_forever, name="cubehub-serve", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    server: MapServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per tile would drown the terminal."""

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in parsed.path.split("/") if p]
        query = dict(urllib.parse.parse_qsl(parsed.query))
        try:
            self._route(parts, query)
        except CubehubError as exc:
            found = not isinstance(exc, NotFoundError)
            self._send_json(
                {"error": str(exc)}, HTTPStatus.BAD_REQUEST if found else HTTPStatus.NOT_FOUND
            )
        except BrokenPipeError:
            pass  # the browser moved on and cancelled the tile

    def _route(self, parts: list[str], query: dict[str, str]) -> None:
        if not parts:
            self._send_file(self.server.static / "index.html")
        elif parts[0] == "static":
            self._send_file(self.server.static.joinpath(*parts[1:]))
        elif parts == ["stores.json"]:
            self._send_json({"stores": [s.describe() for s in self.server.stores.values()]})
        elif parts[0] in self.server.stores and len(parts) > 1:
            self._store_route(self.server.stores[parts[0]], parts[1:], query)
        else:
            self._send_json({"error": f"no such page: /{'/'.join(parts)}"}, HTTPStatus.NOT_FOUND)

    def _store_route(self, store: ServedStore, parts: list[str], query: dict[str, str]) -> None:
        if parts[0] == "layers" and len(parts) == 3 and parts[2] == "tilejson.json":
            layer = store.layer(parts[1])
            tms = store.tile_matrix_set(query.get("tms", WEB_MERCATOR))
            self._send_json(tilejson(store, layer, tms, self._base()))
        elif parts[0] == "layers" and len(parts) == 7 and parts[2] == "tiles":
            layer = store.layer(parts[1])
            tms = store.tile_matrix_set(parts[3])
            z, x, y = (_integer(p) for p in (parts[4], parts[5], parts[6].removesuffix(".png")))
            if not tms.minzoom <= z <= tms.maxzoom:
                raise NotFoundError(
                    f"{tms.id} has zoom levels {tms.minzoom}..{tms.maxzoom}, not {z}"
                )
            png = render_tile(store.layer_array(layer), tms, z, x, y, store.styles[layer.variable])
            self._send(png, "image/png")
        elif parts == ["wmts", "WMTSCapabilities.xml"]:
            self._send(wmts_capabilities(store, self._base()), "application/xml")
        elif parts[0] == "tilematrixsets" and len(parts) == 2:
            tms = store.tile_matrix_set(parts[1].removesuffix(".json"))
            self._send(tms.model_dump_json(exclude_none=True).encode(), "application/json")
        elif parts == ["profile"]:
            try:
                lon, lat = float(query["lon"]), float(query["lat"])
            except (KeyError, ValueError):
                raise InputError(
                    "profile needs lon and lat in degrees, e.g. ?lon=15.8&lat=47.2"
                ) from None
            profile = pixel_profile(store, lon, lat)
            if profile is None:
                self._send_json(
                    {"error": "the point is off the store's grid"}, HTTPStatus.NOT_FOUND
                )
            else:
                self._send_json(profile)
        else:
            self._send_json({"error": f"no such page in store {store.name}"}, HTTPStatus.NOT_FOUND)

    def _base(self) -> str:
        """The server's root as the client reached it (see the module docstring)."""
        if self.server.public_url:
            return self.server.public_url
        proto = self.headers.get("X-Forwarded-Proto", "http").split(",")[0].strip()
        host = self.headers.get("X-Forwarded-Host") or self.headers.get("Host") or "127.0.0.1"
        prefix = self.headers.get("X-Forwarded-Prefix", "").rstrip("/")
        return f"{proto}://{host.split(',')[0].strip()}{prefix}/"

    def _send_file(self, path: Path) -> None:
        root = self.server.static.resolve()
        target = path.resolve()
        if not target.is_relative_to(root) or not target.is_file():
            self._send_json({"error": "no such file"}, HTTPStatus.NOT_FOUND)
            return
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self._send(target.read_bytes(), kind)

    def _send_json(self, body: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(json.dumps(body, allow_nan=False).encode(), "application/json", status)

    def _send(self, body: bytes, kind: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        # Tiles change as tiles of the store complete: let browsers revalidate them.
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)


def _integer(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"tile numbers are integers, got {text!r}") from None
    if value < 0:
        raise InputError(f"tile numbers are >= 0, got {value}")
    return value
