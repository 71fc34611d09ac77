"""``cubehub plan`` on a continental-scale job: thousands of items, metadata only.

Metadata-only items (:mod:`cubehub.testing.catalog`) served by a real STAC API
(``rustac serve``) on loopback; the job covers a strip across all their scenes:

* ``--collection sentinel-2-l2a`` (default): a row of MGRS-like tiles, ODSE years from
  2022 of scenes every 5 days per tile, in UTM 33N at 10 m;
* ``--collection landsat-c2-l2``: the ODSE span, 2000-2020 by default, of Landsat 5, 7 and
  8 every 16 days each over a block of WRS-2-like scenes (``--paths`` x ``--rows``), in
  EPSG:3035 at 30 m, seven bands (ODSE's six reflectance bands and the thermal one).

Prints the plan (items, tiles, tasks per tile and per submission against the task budget,
bytes to read, output size, worker memory), the time of each stage - search +
normalisation (``plan_job``) and the plan summary (which builds one task graph per
distinct number of items and tile shape) - and the peak of Python memory allocations
while planning (tracemalloc, which slows planning; ``--no-tracemalloc`` to time without).

Run: ``.venv/bin/python benchmarks/bench_plan.py [--tiles 8] [--years 3] [--tile-size 1024]``
or ``.venv/bin/python benchmarks/bench_plan.py --collection landsat-c2-l2 [--paths 4] [--rows 1]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from datetime import date
from pathlib import Path
from typing import Any

import pystac_client  # noqa: F401  (imported before tracing: seconds of grammar building, not planning)
from pyproj import Transformer

from cubehub.demo.servers import serve_stac_api
from cubehub.jobspec import make_job
from cubehub.pipeline import plan_job
from cubehub.planning import summarize_plan
from cubehub.testing.catalog import (
    LANDSAT_REFERENCE,
    TILE_EDGE_M,
    landsat_items,
    landsat_scene_bounds,
    synthetic_items,
    tile_bbox_lonlat,
    tile_bounds,
)

SCENES_PER_YEAR = 73  # one every 5 days: the catalog's revisit


def sentinel2_case(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """Items, job fields and a description of the Sentinel-2 strip job."""
    years = args.years or 3
    items = synthetic_items(args.tiles * SCENES_PER_YEAR * years, tiles=args.tiles)
    xmin, ymin, _, _ = tile_bounds(0)
    bounds = (xmin, ymin + 40_000.0, xmin + args.tiles * TILE_EDGE_M, ymin + 40_000.0 + args.height)
    west, south, _, north = tile_bbox_lonlat(0)
    east = tile_bbox_lonlat(args.tiles - 1)[2]
    fields = {
        "bbox": (west, south, east, north),
        "epsg": 32633,
        "bounds": bounds,
        "years": list(range(2022, 2022 + years)),
    }
    where = f"{args.tiles} tiles; job strip {bounds[2] - bounds[0]:.0f} m x {args.height:.0f} m"
    return items, fields, where


def landsat_case(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """Items, job fields and a description of the Landsat strip job in EPSG:3035."""
    years = args.years or 21
    first_path, first_row = LANDSAT_REFERENCE
    paths = range(first_path - args.paths + 1, first_path + 1)
    rows = range(first_row, first_row + args.rows)
    items = landsat_items(date(1999, 12, 1), date(1999 + years, 12, 31), paths=paths, rows=rows)
    # A strip across every path, 20 km inside the outer scenes, midway down the rows.
    west_x = landsat_scene_bounds(paths[-1], rows[0])[0] + 20_000.0
    east_x = landsat_scene_bounds(paths[0], rows[0])[2] - 20_000.0
    top = landsat_scene_bounds(paths[0], rows[0])[3]
    bottom = landsat_scene_bounds(paths[0], rows[-1])[1]
    mid = (top + bottom) / 2
    to_lonlat = Transformer.from_crs(32632, 4326, always_xy=True)
    lons, lats = to_lonlat.transform(
        [west_x, east_x, west_x, east_x],
        [
            mid - args.height / 2,
            mid - args.height / 2,
            mid + args.height / 2,
            mid + args.height / 2,
        ],
    )
    fields = {
        "collection": "landsat-c2-l2",
        "bbox": (min(lons), min(lats), max(lons), max(lats)),
        "epsg": 3035,
        "years": list(range(2000, 2000 + years)),
    }
    where = (
        f"{args.paths} x {args.rows} WRS-2-like scenes; job strip about "
        f"{east_x - west_x:.0f} m x {args.height:.0f} m in EPSG:3035 at 30 m, "
        f"{years} years from 2000"
    )
    return items, fields, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--collection",
        choices=("sentinel-2-l2a", "landsat-c2-l2"),
        default="sentinel-2-l2a",
        help="which catalog (default sentinel-2-l2a)",
    )
    parser.add_argument(
        "--tiles", type=int, default=8, help="Sentinel-2: MGRS-like tiles in the row (default 8)"
    )
    parser.add_argument(
        "--paths", type=int, default=4, help="Landsat: WRS-2-like paths (default 4)"
    )
    parser.add_argument("--rows", type=int, default=1, help="Landsat: WRS-2-like rows (default 1)")
    parser.add_argument(
        "--years",
        type=int,
        default=None,
        help="ODSE years: from 2022, default 3 (Sentinel-2); from 2000, default 21 (Landsat)",
    )
    parser.add_argument(
        "--tile-size", type=int, default=1024, help="job tile edge, px (default 1024)"
    )
    parser.add_argument(
        "--height", type=float, default=20_480.0, help="strip height, m (default 20 480)"
    )
    parser.add_argument("--budget", type=int, default=100_000, help="task budget (default 100 000)")
    parser.add_argument(
        "--no-tracemalloc", action="store_true", help="do not trace memory (planning runs faster)"
    )
    args = parser.parse_args()

    case = landsat_case if args.collection == "landsat-c2-l2" else sentinel2_case
    items, fields, where = case(args)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.json"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
        with serve_stac_api(path) as api:
            job = make_job(
                stac_api=api.url,
                tile_size=args.tile_size,
                output=str(Path(tmp) / "never-written.zarr"),
                **fields,
            )
            if not args.no_tracemalloc:
                tracemalloc.start()
            t0 = time.perf_counter()
            plan = plan_job(job)
            t1 = time.perf_counter()
            summary = summarize_plan(plan, task_budget=args.budget)
            t2 = time.perf_counter()
            peak = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else None
            tracemalloc.stop()
    print(f"catalog: {len(items)} items over {where}")
    for line in summary.lines():
        print("  " + line)
    exact = [t for t in summary.tiles if t.tasks_exact]
    print(
        f"  graphs built {len(exact)}: "
        + ", ".join(f"{t.items} items -> {t.tasks:,} tasks" for t in exact)
    )
    print(
        f"time: search + normalise {t1 - t0:.1f} s, summary {t2 - t1:.1f} s, total {t2 - t0:.1f} s"
        + (" (under tracemalloc)" if peak is not None else "")
    )
    if peak is not None:
        print(f"memory: peak {peak / 2**20:.0f} MiB of Python allocations while planning")


if __name__ == "__main__":
    main()
