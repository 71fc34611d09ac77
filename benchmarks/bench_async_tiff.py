"""async-tiff + obstore against GDAL (rasterio): decoding every tile of bench_read's COGs.

Issue 17 asks whether an async COG reader beats GDAL here. On ``bench_read``'s files of
one ``--shape`` (default 2048 px x 18 dates x 4 bands + ``qa_pixel``: uint16, DEFLATE,
512 px tiles), local, in one process run:

* rasterio, each file opened and read whole, 1 and 2 threads (bench_read's raw rows,
  with the cube's GDAL settings);
* async-tiff with obstore's ``LocalStore``: every tile of every file fetched
  (``fetch_tiles``) and decoded, on the event loop (``decode_sync``) and on async-tiff's
  Rust thread pool of 1 and 2 threads (``decode``).

First checks that a sample of async-tiff's tiles equals GDAL's windows exactly. Prints the
best of ``--repeat`` wall times, Mpx/s, the ratio to rasterio with 2 threads, and the CPU
seconds (user + system) of the same best run, which other load on the machine disturbs
less than wall time.

async-tiff and obstore are not in the lock: ``.venv/bin/pip install async-tiff obstore``,
then ``.venv/bin/python benchmarks/bench_async_tiff.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from bench_read import Runs, Shape, write_scenes
from rasterio.windows import Window

try:
    from async_tiff import TIFF, ThreadPool
    from obstore.store import LocalStore
except ImportError as exc:
    raise SystemExit(f"{exc}: pip install async-tiff obstore (not in the lock)") from exc


async def async_tiff_sum(store: Any, names: list[str], threads: int | None) -> int:
    """Every tile fetched and decoded; ``threads`` None: on the event loop, else on a pool."""
    pool = ThreadPool(threads) if threads else None

    async def one(name: str) -> int:
        tiff = await TIFF.open(name, store=store)
        ifd = tiff.ifds[0]
        columns = -(-ifd.image_width // ifd.tile_width)
        rows = -(-ifd.image_height // ifd.tile_height)
        tiles = await tiff.fetch_tiles([(x, y) for y in range(rows) for x in range(columns)], 0)
        if pool is None:
            arrays = [tile.decode_sync(None) for tile in tiles]
        else:
            arrays = await asyncio.gather(*(tile.decode(pool=pool) for tile in tiles))
        return sum(int(np.asarray(a).sum(dtype=np.uint64)) for a in arrays)

    return sum(await asyncio.gather(*(one(name) for name in names)))


async def mismatching_tiles(store: Any, root: Path, names: list[str]) -> tuple[int, int]:
    """(tiles unlike GDAL's window of them, tiles compared) over a sample."""
    bad = compared = 0
    for name in names[:10]:
        tiff = await TIFF.open(name, store=store)
        ifd = tiff.ifds[0]
        size = ifd.tile_width
        with rasterio.open(root / name) as src:
            for x, y in [(0, 0), (1, 0), (0, 1)]:
                tile = await tiff.fetch_tile(x, y, 0)
                ours = np.asarray(await tile.decode()).reshape(size, size)
                gdal = src.read(1, window=Window(x * size, y * size, size, size))
                bad += not np.array_equal(ours, gdal)
                compared += 1
    return bad, compared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="2048x18x4", help="SIZExDATESxBANDS (2048x18x4)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, best kept (3)")
    args = parser.parse_args()
    shape = Shape.parse(args.shape)
    root = Path(tempfile.gettempdir()) / f"cubehub-bench-read-{shape.size}x{shape.dates}"
    root.mkdir(exist_ok=True)
    items = write_scenes(root, shape)
    names = [Path(a["href"]).name for i in items for a in i["assets"].values()]
    pixels = len(names) * shape.size**2
    runs = Runs(items, shape, shape.grid(), chunk=512, threads=2)
    store = LocalStore(str(root))
    bad, compared = asyncio.run(mismatching_tiles(store, root, names))
    print(f"load average {os.getloadavg()[0]:.2f}; {len(names)} files; tiles unlike GDAL's: "
          f"{bad} of {compared}")  # fmt: skip
    rows: list[tuple[str, Callable[[], int]]] = [
        ("rasterio whole file, 1 thread", runs.raw(str(root), threads=1)),
        ("rasterio whole file, 2 threads", runs.raw(str(root), threads=2)),
        ("async-tiff, decode_sync on the loop", lambda: asyncio.run(async_tiff_sum(store, names, None))),
        ("async-tiff, decode on its pool of 1", lambda: asyncio.run(async_tiff_sum(store, names, 1))),
        ("async-tiff, decode on its pool of 2", lambda: asyncio.run(async_tiff_sum(store, names, 2))),
    ]  # fmt: skip
    print(f"{'run':38} {'s':>6} {'Mpx/s':>7} {'x rio2':>6} {'CPU s':>6}")
    best: dict[str, tuple[float, float]] = {}
    sums = set()
    for name, run in rows:
        timings = []
        for _ in range(args.repeat):
            c0, t0 = os.times(), time.perf_counter()
            sums.add(run())
            wall, c1 = time.perf_counter() - t0, os.times()
            timings.append((wall, c1.user + c1.system - c0.user - c0.system))
        best[name] = min(timings)
        wall, cpu = best[name]
        ratio = best.get("rasterio whole file, 2 threads", (float("nan"), 0.0))[0] / wall
        print(
            f"{name:38} {wall:6.2f} {pixels / wall / 1e6:7.1f} {ratio:6.2f} {cpu:6.2f}", flush=True
        )
    assert len(sums) == 1, f"the readers disagree on the pixel sum: {sums}"
    print(f"every reader summed the same pixels; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
