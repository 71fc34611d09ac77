"""Whole-pipeline benchmark, peers side by side in one process run.

On the demo archive (``--size`` pixels a side, one ODSE year, 6 bands + SCL, served over
HTTP range requests and a real STAC API on loopback), on one local cluster:

1. decode-only: the same cube cubehub builds, read and summed (bands and SCL), no percentile;
2. cubehub: the whole job (search, mask, p25/p50/p75 of 6 bands + NDVI per season, Zarr);
3. stackstac + xarray.quantile: the Pangeo recipe (stackstac's float64 default, SCL mask
   with ``where``, ``groupby(season).quantile``, NDVI per observation, Zarr).

Prints wall time, throughput in Mpx/s (output grid pixels per second, all bands, seasons
and percentiles together) and peak RSS above idle per worker, then ratios.

Run: ``.venv/bin/python benchmarks/bench_pipeline.py --size 1024``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pystac_client
import stackstac
import xarray as xr
from distributed import Client

from cubehub.clusters.backends import cluster
from cubehub.cube import load_cube
from cubehub.demo.archive import ArchiveSpec, build_archive
from cubehub.demo.servers import serve_files, serve_stac_api
from cubehub.jobspec import make_job
from cubehub.pipeline import plan_job, run_job
from cubehub.seasons import odse_quarters
from cubehub.testing.memory import PeakMemory

BANDS = ["blue", "green", "red", "nir", "swir16", "swir22"]
KEEP_SCL = [4, 5, 6, 7, 11]


def timed(client: Client, fn: Callable[[], object]) -> tuple[float, float]:
    client.run(lambda: __import__("gc").collect())
    with PeakMemory(client) as mem:
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    return seconds, mem.max_above_idle_mib()


def pangeo_recipe(
    api_url: str, bbox: tuple, bounds: tuple, epsg: int, year: int, out: Path
) -> None:
    """What a Pangeo user writes with stackstac + xarray for the same composite."""
    calendar = odse_quarters([year])
    first, last = calendar.time_range()
    items = (
        pystac_client.Client.open(api_url)
        .search(collections=["sentinel-2-l2a"], bbox=bbox, datetime=f"{first}/{last}")
        .item_collection()
    )
    for item in items:  # stackstac 0.5.1 reads only proj:epsg (stackstac #262)
        item.properties["proj:epsg"] = epsg
    stack = stackstac.stack(
        items, assets=[*BANDS, "scl"], epsg=epsg, resolution=10, bounds=bounds, chunksize=512
    )
    clear = stack.sel(band="scl").isin(KEEP_SCL)
    refl = stack.sel(band=BANDS).where(clear)
    ndvi = (refl.sel(band="nir") - refl.sel(band="red")) / (
        refl.sel(band="nir") + refl.sel(band="red")
    )
    labels = np.array([w.label for w in calendar.windows])[calendar.assign(stack.time.values)]
    season = xr.DataArray(labels, dims="time", coords={"time": stack.time})
    composite = refl.groupby(season.rename("season")).quantile([0.25, 0.5, 0.75], dim="time")
    ndvi_q = ndvi.groupby(season.rename("season")).quantile([0.25, 0.5, 0.75], dim="time")
    ds = xr.Dataset({b: composite.sel(band=b, drop=True) for b in BANDS} | {"NDVI": ndvi_q})
    ds = ds.drop_vars([c for c in ds.coords if c not in ("season", "quantile", "x", "y")])
    ds = ds.drop_attrs()  # stackstac's attrs (an Affine spec) are not valid Zarr attributes
    ds.to_zarr(out, mode="w", consolidated=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", type=int, default=1024, help="archive edge in pixels (multiple of 32)"
    )
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cubehub-bench")
    parser.add_argument("--skip-peer", action="store_true", help="skip stackstac + xarray.quantile")
    args = parser.parse_args()

    spec = ArchiveSpec(size=args.size)
    archive = build_archive(args.cache / f"archive-{args.size}", spec)
    work = Path(tempfile.mkdtemp(prefix="cubehub-bench-"))
    rows: dict[str, tuple[float, float]] = {}
    try:
        items_file = work / "items.json"
        with serve_files(archive.root) as files:
            archive.write_item_collection(items_file, files.url)
            with (
                serve_stac_api(items_file, archive.collection_dict()) as api,
                cluster("local") as client,
            ):
                print(
                    f"cluster: {len(client.scheduler_info()['workers'])} worker process(es), "
                    f"{sum(w['nthreads'] for w in client.scheduler_info()['workers'].values())} threads"
                )
                job = make_job(
                    stac_api=api.url,
                    bbox=archive.bbox_lonlat(),
                    bounds=archive.bounds,
                    epsg=archive.epsg,
                    years=[spec.year],
                    output=str(work / "cubehub.zarr"),
                    overwrite=True,
                    tile_size=max(2048, args.size),
                )
                plan = plan_job(job)
                cube = load_cube(plan.normalised, job.bands, plan.grid, chunk_size=job.chunk_size)
                # Warm up: numba compilation and GDAL's first opens are not what we measure.
                run_job(
                    job.model_copy(update={"output": str(work / "warm.zarr")}),
                    client,
                    show_progress=False,
                )

                def decode() -> None:
                    client.compute([cube[name].sum() for name in cube.data_vars], sync=True)

                rows["decode-only (read + sum)"] = timed(client, decode)
                rows["cubehub seasonal composite"] = timed(
                    client, lambda: run_job(job, client, show_progress=False)
                )
                if not args.skip_peer:
                    rows["stackstac + xarray.quantile"] = timed(
                        client,
                        lambda: pangeo_recipe(
                            api.url,
                            archive.bbox_lonlat(),
                            archive.bounds,
                            archive.epsg,
                            spec.year,
                            work / "peer.zarr",
                        ),
                    )
                print(
                    f"read {files.stats.range_requests} range requests, {files.stats.bytes_sent / 2**20:.0f} MiB"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mpx = args.size * args.size / 1e6
    print(
        f"\narchive {args.size}x{args.size} px, {cube.sizes['time']} dates, {len(BANDS)} bands + SCL, "
        f"p25/p50/p75 x 4 seasons + NDVI\n"
    )
    print(f"{'run':32} {'seconds':>8} {'Mpx/s':>8} {'peak MiB/worker':>16}")
    for name, (seconds, mib) in rows.items():
        print(f"{name:32} {seconds:8.2f} {mpx / seconds:8.3f} {mib:16.0f}")
    ours = rows["cubehub seasonal composite"][0]
    print(
        f"\ncubehub throughput / decode-only throughput: {rows['decode-only (read + sum)'][0] / ours:.2f}"
    )
    if "stackstac + xarray.quantile" in rows:
        print(
            f"cubehub speed-up over stackstac + xarray.quantile: {rows['stackstac + xarray.quantile'][0] / ours:.1f}x"
        )


if __name__ == "__main__":
    main()
