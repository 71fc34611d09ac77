"""``cubehub plan`` on a continental-scale job: thousands of items, metadata only.

A row of MGRS-like tiles (:mod:`cubehub.testing.catalog`), ODSE years of scenes every
5 days per tile, served by a real STAC API (``rustac serve``) on loopback; the job covers a
strip across all tiles. Prints the plan (tasks per tile and per submission against the
task budget, bytes to read, output size, worker memory) and the time of each stage:
search + normalisation (``plan_job``) and the plan summary (which builds one task graph
per distinct number of items and tile shape).

Run: ``.venv/bin/python benchmarks/bench_plan.py [--tiles 8] [--years 3] [--tile-size 1024]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cubehub.jobspec import make_job
from cubehub.pipeline import plan_job
from cubehub.planning import summarize_plan
from cubehub.testing.catalog import TILE_EDGE_M, synthetic_items, tile_bbox_lonlat, tile_bounds
from cubehub.testing.servers import serve_stac_api

SCENES_PER_YEAR = 73  # one every 5 days: the catalog's revisit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=8, help="MGRS-like tiles in the row (default 8)")
    parser.add_argument("--years", type=int, default=3, help="ODSE years from 2022 (default 3)")
    parser.add_argument("--tile-size", type=int, default=1024, help="job tile edge, px (default 1024)")
    parser.add_argument("--height", type=float, default=20_480.0, help="strip height, m (default 20 480)")
    parser.add_argument("--budget", type=int, default=100_000, help="task budget (default 100 000)")
    args = parser.parse_args()

    items = synthetic_items(args.tiles * SCENES_PER_YEAR * args.years, tiles=args.tiles)
    xmin, ymin, _, _ = tile_bounds(0)
    bounds = (xmin, ymin + 40_000.0, xmin + args.tiles * TILE_EDGE_M, ymin + 40_000.0 + args.height)
    west, south, _, north = tile_bbox_lonlat(0)
    east = tile_bbox_lonlat(args.tiles - 1)[2]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.json"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
        with serve_stac_api(path) as api:
            job = make_job(
                stac_api=api.url,
                bbox=(west, south, east, north),
                epsg=32633,
                bounds=bounds,
                years=list(range(2022, 2022 + args.years)),
                tile_size=args.tile_size,
                output=str(Path(tmp) / "never-written.zarr"),
            )
            t0 = time.perf_counter()
            plan = plan_job(job)
            t1 = time.perf_counter()
            summary = summarize_plan(plan, task_budget=args.budget)
            t2 = time.perf_counter()
    print(f"catalog: {len(items)} items over {args.tiles} tiles; job strip {bounds[2] - bounds[0]:.0f} m x {args.height:.0f} m")
    for line in summary.lines():
        print("  " + line)
    exact = [t for t in summary.tiles if t.tasks_exact]
    print(f"  graphs built {len(exact)}: " + ", ".join(f"{t.items} items -> {t.tasks:,} tasks" for t in exact))
    print(f"time: search + normalise {t1 - t0:.1f} s, summary {t2 - t1:.1f} s, total {t2 - t0:.1f} s")


if __name__ == "__main__":
    main()
