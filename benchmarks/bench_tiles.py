"""Tile latency of ``cubehub serve`` against rio-tiler on a COG export of the same layer.

One synthetic composite store (see ``bench_write.synthetic_composite``; 1024 x 1024 px at
10 m, 256 px chunks, Zarr format 2 as jobs write it) and the COG of one of its layers (red
p50 summer: uint16 with the store's scale/offset and nodata, DEFLATE with predictor, 512 px
blocks, overviews), written here with rasterio's COG driver. The same Web Mercator tiles
(256 px, zooms 11-15 over the store) are rendered the same way (nearest resampling,
rescale 0..0.4, greys colour map, PNG) by

* ``cubehub serve``: over HTTP from the server, and in-process (``render_tile``);
* rio-tiler's COG ``Reader`` in-process (what titiler runs per request).

Cold: the first request of each tile in a fresh process (no Zarr metadata, decoded chunk or
GDAL block cache yet; the OS file cache may hold the files). Warm: the same tiles again,
three rounds. Each method runs in its own subprocess, one after the other.

Run from the repository root::

    .venv/bin/python benchmarks/bench_tiles.py            # 1024 x 1024 px
    .venv/bin/python benchmarks/bench_tiles.py --size 512 # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

LAYER_VARIABLE, LAYER_SEASON, LAYER_Q = "red", "2022-summer", 50.0
WARM_ROUNDS = 3


def make_inputs(folder: Path, size: int) -> tuple[str, str]:
    """(store URL, COG path) of one synthetic composite."""
    import rasterio
    import xarray as xr
    from bench_write import synthetic_composite, write

    url = str(folder / "composite.zarr")
    ds = synthetic_composite(size, 256).persist(scheduler="threads")
    write(url, ds, 512, 256)
    raw = xr.open_zarr(url, mask_and_scale=False, decode_coords="all")[LAYER_VARIABLE]
    layer = raw.sel(season=LAYER_SEASON, percentile=LAYER_Q)
    cog = str(folder / "red_p50_summer.tif")
    with rasterio.open(
        cog,
        "w",
        driver="COG",
        width=size,
        height=size,
        count=1,
        dtype="uint16",
        crs="EPSG:32633",
        transform=layer.rio.transform(),
        nodata=0,
        compress="DEFLATE",
        predictor=2,
        blocksize=512,
        overview_resampling="NEAREST",
    ) as dst:
        dst.write(layer.values, 1)
        dst.scales, dst.offsets = (raw.attrs["scale_factor"],), (raw.attrs["add_offset"],)
    return url, cog


def tiles_over(url: str) -> list[tuple[int, int, int]]:
    """Web Mercator tiles over the store: all at zooms 11-13, 16 at random at 14 and 15."""
    import morecantile

    from cubehub.maps.layers import ServedStore

    west, south, east, north = ServedStore(url).lonlat_bounds()
    tms = morecantile.tms.get("WebMercatorQuad")
    rng = np.random.default_rng(0)
    out: list[tuple[int, int, int]] = []
    for z in (11, 12, 13, 14, 15):
        found = [(t.z, t.x, t.y) for t in tms.tiles(west, south, east, north, [z])]
        if len(found) > 16:
            found = [found[i] for i in rng.choice(len(found), 16, replace=False)]
        out += found
    return out


def time_tiles(fetch: object, tiles: list[tuple[int, int, int]]) -> dict[str, list[float]]:
    assert callable(fetch)
    times: dict[str, list[float]] = {"cold": [], "warm": []}
    for kind, rounds in (("cold", 1), ("warm", WARM_ROUNDS)):
        for _ in range(rounds):
            for z, x, y in tiles:
                started = time.perf_counter()
                png = fetch(z, x, y)
                times[kind].append(time.perf_counter() - started)
                assert png[:4] == b"\x89PNG"
    return times


def run_method(method: str, url: str, cog: str, tiles: list[tuple[int, int, int]]) -> None:
    """In a fresh process: time one method and print its times as JSON."""
    from cubehub.maps.style import style_of

    style = style_of(LAYER_VARIABLE, {"long_name": "red surface reflectance"})
    layer_id = "red_p50_2022.06.25..2022.09.12"
    if method == "cubehub serve (HTTP)":
        from cubehub.maps.server import serving

        with serving([url]) as server:
            base = f"{server.url}composite/layers/{layer_id}/tiles/WebMercatorQuad"

            def fetch(z: int, x: int, y: int) -> bytes:
                with urllib.request.urlopen(f"{base}/{z}/{x}/{y}.png") as response:
                    return bytes(response.read())

            times = time_tiles(fetch, tiles)
    elif method == "cubehub render_tile":
        from cubehub.maps.layers import ServedStore
        from cubehub.maps.render import render_tile

        store = ServedStore(url)
        tms = store.tile_matrix_set("WebMercatorQuad")
        layer = store.layer(layer_id)

        def fetch(z: int, x: int, y: int) -> bytes:
            return render_tile(store.layer_array(layer), tms, z, x, y, style)

        times = time_tiles(fetch, tiles)
    else:
        from rio_tiler.errors import TileOutsideBounds
        from rio_tiler.io import Reader

        from cubehub.maps.render import EMPTY_PNG

        with Reader(cog) as reader:

            def fetch(z: int, x: int, y: int) -> bytes:
                try:
                    image = reader.tile(
                        x, y, z, tilesize=256, reproject_method="nearest", unscale=True
                    )
                except TileOutsideBounds:
                    return EMPTY_PNG
                image.rescale(in_range=((style.low, style.high),), out_range=((0, 255),))
                return bytes(image.render(img_format="PNG", colormap=style.table()))

            times = time_tiles(fetch, tiles)
    print(json.dumps(times))


METHODS = ("cubehub serve (HTTP)", "cubehub render_tile", "rio-tiler COG Reader")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="grid edge, pixels (default 1024)")
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:  # the child
        url, cog = args.inputs
        run_method(args.method, url, cog, tiles_over(url))
        return
    with tempfile.TemporaryDirectory(prefix="cubehub-bench-tiles-") as tmp:
        url, cog = make_inputs(Path(tmp), args.size)
        tiles = tiles_over(url)
        print(
            f"store {args.size} x {args.size} px (10 m, 256 px chunks), COG of red p50 summer; "
            f"{len(tiles)} Web Mercator tiles of 256 px at zooms 11-15; warm = {WARM_ROUNDS} more "
            f"rounds; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"{'method':<24} {'cold p50':>9} {'cold p95':>9} {'warm p50':>9} {'warm p95':>9}  (ms)"
        )
        for method in METHODS:
            child = subprocess.run(
                [sys.executable, __file__, "--method", method, "--inputs", url, cog],
                capture_output=True,
                text=True,
                check=True,
            )
            times = json.loads(child.stdout.strip().splitlines()[-1])
            cells = [
                f"{1000 * np.percentile(times[kind], q):9.1f}"
                for kind in ("cold", "warm")
                for q in (50, 95)
            ]
            print(f"{method:<24} {' '.join(cells)}")


if __name__ == "__main__":
    main()
