"""Sampling 100,000 points from a composite store: time and peak memory.

One synthetic composite store (``bench_write.synthetic_composite``: 7 variables x 4 seasons
x 3 percentiles plus counts, 2048 x 2048 px at 10 m, 256 px chunks, Zarr format 2 as jobs
write it), sampled at 100,000 random points given in longitude and latitude (1 % of them
off the grid) by :func:`cubehub.learn.sample.sample_points` on Dask's threaded scheduler
(2 threads), in a fresh process. Peak memory: the process's peak resident set size
(``ru_maxrss``) over its size before sampling, and tracemalloc's peak of Python and numpy
allocations during sampling; both against the decoded size of the store, which sampling
never holds.

Run from the repository root::

    .venv/bin/python benchmarks/bench_sample.py                 # 2048 x 2048 px, 100,000 points
    .venv/bin/python benchmarks/bench_sample.py --size 1024 --points 20000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def sample_once(url: str, points: int) -> dict[str, float]:
    """In a fresh process: sample ``points`` random points of the store at ``url``."""
    import dask
    import geopandas as gpd

    from cubehub.learn.sample import sample_points, summary
    from cubehub.output.open import open_composite

    ds = open_composite(url)
    rng = np.random.default_rng(0)
    x0, x1 = float(ds.x.min()), float(ds.x.max())
    y0, y1 = float(ds.y.min()), float(ds.y.max())
    pad = 0.005 * (x1 - x0)  # about 1 % of the points fall off the grid
    xs, ys = rng.uniform(x0 - pad, x1 + pad, points), rng.uniform(y0 - pad, y1 + pad, points)
    frame = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xs, ys), crs=32633).to_crs(4326)
    decoded = sum(v.size * 4 for v in ds.data_vars.values())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    started = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=2):
        samples = sample_points(ds, frame)
    seconds = time.perf_counter() - started
    _, peak_traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    counts = summary(samples)
    return {
        "seconds": seconds,
        "rss_before": before,
        "rss_peak": after,
        "traced_peak": peak_traced,
        "decoded_store": decoded,
        "columns": len(samples.columns),
        "ok": counts["ok"],
        "outside": counts["outside grid"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="grid edge, pixels (default 2048)")
    parser.add_argument("--points", type=int, default=100_000, help="points (default 100,000)")
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.store:  # the child
        print(json.dumps(sample_once(args.store, args.points)))
        return
    from bench_write import synthetic_composite, write

    with tempfile.TemporaryDirectory(prefix="cubehub-bench-sample-") as tmp:
        url = str(Path(tmp) / "composite.zarr")
        write(url, synthetic_composite(args.size, 256).persist(scheduler="threads"), 1024, 256)
        child = subprocess.run(
            [sys.executable, __file__, "--store", url, "--points", str(args.points)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(child.stdout.strip().splitlines()[-1])
    mib = 2**20
    print(
        f"store {args.size} x {args.size} px, 256 px chunks, {r['decoded_store'] / mib:.0f} MiB decoded; "
        f"{args.points} points ({r['ok']} on the grid, {r['outside']} off it) -> {r['columns']} columns; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"seconds                     {r['seconds']:.1f}")
    print(f"points per second           {args.points / r['seconds']:.0f}")
    print(
        f"peak RSS over start (MiB)   {(r['rss_peak'] - r['rss_before']) / mib:.0f} (process peak {r['rss_peak'] / mib:.0f})"
    )
    print(f"tracemalloc peak (MiB)      {r['traced_peak'] / mib:.0f}")


if __name__ == "__main__":
    main()
