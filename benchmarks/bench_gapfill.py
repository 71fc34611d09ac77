"""Gap filling a multi-year composite store, as a fraction of computing the composites.

On the demo archive (``--years`` ODSE years of the same land under other weather,
``--size`` pixels a side, served over HTTP range requests and a real STAC API on loopback),
on one local cluster of worker processes:

1. the composites: ``run_job`` of the multi-year job (search, SCL mask, p25/p50/p75 of the
   bands and per-observation NDVI for four seasons a year, Zarr), in tiles of ``--tile-size``;
2. the gap fill: ``fill_store`` of that store into a second one (eumap's TMWM defaults),
   after a share ``--withheld`` of its pixel-seasons is withheld, so there are gaps to fill
   wherever the archive had clear observations.

Prints wall time and the peak RSS of the busiest worker above idle for both, the gap fill's
time as a fraction of the composites', and the share of values filled by each rule. A
warm-up on a small window runs first, so numba compilation is not timed.

Run: ``.venv/bin/python benchmarks/bench_gapfill.py --size 2048``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr
from distributed import Client

from cubehub.clusters.backends import cluster
from cubehub.demo import start_demo
from cubehub.fill_job import fill_shares, fill_store
from cubehub.gapfill import filled_variables
from cubehub.jobspec import make_job
from cubehub.output.open import open_store, open_with_records
from cubehub.pipeline import run_job
from cubehub.testing.memory import PeakMemory


def timed(client: Client, fn: Callable[[], object]) -> tuple[float, float]:
    client.run(lambda: __import__("gc").collect())
    with PeakMemory(client) as memory:
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    return seconds, memory.max_above_idle_mib()


def withhold(source: str, target: str, share: float, client: Client) -> None:
    """Copy the composite store ``source`` to ``target`` with ``share`` of its pixel-seasons
    withheld (NaN in every band and index), through the store's own tile writes."""
    ds, _, layout = open_with_records(source)
    rng = np.random.default_rng(0)
    first = ds[filled_variables(ds)[0]]
    chunks = dict(zip(first.dims, first.data.chunks, strict=True))
    held = xr.DataArray(
        rng.random((ds.sizes["season"], ds.sizes["y"], ds.sizes["x"])) < share,
        dims=("season", "y", "x"),
    ).chunk({"season": 1, "y": chunks["y"][0], "x": chunks["x"][0]})
    out = ds.copy()
    for name in filled_variables(ds):
        out[name] = ds[name].where(~held)
        out[name].encoding = {
            k: v
            for k, v in ds[name].encoding.items()
            if k in ("dtype", "scale_factor", "add_offset", "_FillValue", "chunks")
        }
    out["valid_count"].encoding = {
        k: v
        for k, v in ds["valid_count"].encoding.items()
        if k in ("dtype", "_FillValue", "chunks")
    }
    for name in out.coords:  # the source's Zarr 2 string codecs are not options of a new store
        out[name].encoding = {}
    tiles = layout.as_tiles()
    store = open_store(target, out, tiles, overwrite=True)
    for tile in tiles:
        part = out.isel(y=slice(*tile.y), x=slice(*tile.x))
        store.mark_complete(tile, client.compute(store.write_tile(part, tile), sync=True))
    store.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="edge in pixels (multiple of 32)")
    parser.add_argument("--years", type=int, default=3, help="ODSE years, from 2021 on")
    parser.add_argument(
        "--tile-size",
        type=int,
        default=1024,
        help="tile edge in pixels (a 2048 px tile of 3 years is over the 100,000-task budget)",
    )
    parser.add_argument("--revisit-days", type=int, default=10, help="days between acquisitions")
    parser.add_argument(
        "--withheld", type=float, default=0.1, help="share of pixel-seasons withheld"
    )
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cubehub-bench")
    args = parser.parse_args()

    years = tuple(range(2021, 2021 + args.years))
    work = Path(tempfile.mkdtemp(prefix="cubehub-bench-gapfill-"))
    rows: dict[str, tuple[float, float]] = {}
    try:
        with (
            start_demo(
                args.cache / f"gapfill-{args.size}-{args.revisit_days}d",
                size=args.size,
                years=years,
                revisit_days=args.revisit_days,
            ) as demo,
            cluster("local") as client,
        ):
            workers = client.scheduler_info()["workers"].values()
            print(
                f"cluster: {len(workers)} worker process(es), {sum(w['nthreads'] for w in workers)} threads"
            )
            fields = {
                "stac_api": demo.stac_api,
                "bbox": demo.bbox,
                "bounds": demo.bounds,
                "epsg": demo.epsg,
                "years": years,
                "tile_size": min(args.tile_size, args.size),
                "chunk_size": min(512, args.tile_size, args.size),
            }
            # Warm-up on a 256 px window: numba compiles the kernels once per worker.
            x0, y0, _, _ = demo.bounds
            small = {**fields, "bounds": (x0, y0, x0 + 2560.0, y0 + 2560.0), "tile_size": 256}
            warm = make_job(**{**small, "chunk_size": 256}, output=str(work / "warm.zarr"))
            run_job(warm, client, show_progress=False)
            fill_store(warm.output, str(work / "warm-filled.zarr"), client, show_progress=False)

            job = make_job(**fields, output=str(work / "observed.zarr"))
            rows["composites (run_job)"] = timed(
                client, lambda: run_job(job, client, show_progress=False)
            )
            gappy = str(work / "composite.zarr")
            withhold(job.output, gappy, args.withheld, client)
            filled = str(work / "filled.zarr")
            rows["gap fill (fill_store)"] = timed(
                client, lambda: fill_store(gappy, filled, client, show_progress=False)
            )
            shares = fill_shares(filled)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\n{args.size} x {args.size} px, {args.years} years x 4 seasons, {len(job.bands)} bands + "
        f"NDVI, p25/p50/p75, tiles of {job.tile_size} px, chunks of {job.chunk_size} px; "
        f"{100 * args.withheld:g} % of pixel-seasons withheld before the fill\n"
    )
    print(f"{'run':28} {'seconds':>9} {'peak MiB/worker':>16}")
    for name, (seconds, mib) in rows.items():
        print(f"{name:28} {seconds:9.1f} {mib:16.0f}")
    fraction = rows["gap fill (fill_store)"][0] / rows["composites (run_job)"][0]
    print(f"\ngap fill time / composite time: {fraction:.3f}")
    print("values by fill source: " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in shares.items()))


if __name__ == "__main__":
    main()
