"""Time to build the lazy cube, and its task count, for 100, 1,000 and 10,000 items.

Metadata only (:mod:`cubehub.testing.catalog`): nothing is read. Normalisation
(CRS, band names, offsets, de-duplication) and stackstac's graph construction are timed
separately; the area is one 10.98 km x 10.98 km window at 10 m per tile group.

Run: ``.venv/bin/python benchmarks/bench_cube.py``
"""

from __future__ import annotations

import argparse
import time

from cubehub.catalog.items import normalize_items
from cubehub.cube import load_cube
from cubehub.grid import OutputGrid
from cubehub.testing.catalog import synthetic_items, tile_bounds

BANDS = ["blue", "green", "red", "nir", "swir16", "swir22"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 1000, 10000])
    args = parser.parse_args()
    xmin, _, _, ymax = tile_bounds(0)
    # One 1098 x 1098 px window across the border of tiles 0 and 1.
    grid = OutputGrid(32633, 10.0, (xmin + 104_310, ymax - 10_980, xmin + 115_290, ymax))
    print(f"{'items':>7} {'normalise s':>12} {'stack s':>8} {'tasks':>9} {'cube shape'}")
    for n in args.counts:
        items = synthetic_items(n, tiles=20)
        t0 = time.perf_counter()
        normalised = normalize_items(items, bands=BANDS)
        t1 = time.perf_counter()
        cube = load_cube(normalised, BANDS, grid)
        tasks = len(cube.__dask_graph__())
        t2 = time.perf_counter()
        print(f"{n:7d} {t1 - t0:12.2f} {t2 - t1:8.2f} {tasks:9d} {tuple(cube.sizes.values())}")


if __name__ == "__main__":
    main()
