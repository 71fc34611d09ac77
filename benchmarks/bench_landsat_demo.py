"""The Landsat demo year end to end: the ODSE product on Landsat Collection 2 Level-2.

On the synthetic Landsat archive (``--size`` 30 m pixels a side, one ODSE year of Landsat
7/8/9 scenes over WRS-2 paths 189 and 190), served over HTTP range requests and a real STAC
API on loopback, on one local cluster of worker processes: the demo's job
(:func:`cubehub.demo.run.demo_job`: search, QA_PIXEL mask, p25/p50/p75 of the seven ODSE
bands and per-observation NDVI for four seasons, Zarr) on the native Landsat grid.

Prints the archive build time, the job's wall time, output megapixels per second, the HTTP
range requests and bytes read, and the peak RSS of the busiest worker above idle
(:class:`cubehub.testing.memory.PeakMemory`). A warm-up job on a 32 px corner runs first, so
numba compilation is not timed. The archive is cached under ``--cache``.

Run: ``.venv/bin/python benchmarks/bench_landsat_demo.py --size 512``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from cubehub.clusters.backends import cluster
from cubehub.demo.landsat import LandsatSpec, build_landsat_archive
from cubehub.demo.run import demo_job
from cubehub.demo.servers import serve_files, serve_stac_api
from cubehub.pipeline import run_job
from cubehub.testing.memory import PeakMemory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="edge in 30 m pixels (x 16)")
    parser.add_argument("--year", type=int, default=2021, help="ODSE year (1985..2100)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cubehub-bench")
    args = parser.parse_args()

    spec = LandsatSpec(size=args.size, year=args.year)
    start = time.perf_counter()
    archive = build_landsat_archive(args.cache / f"landsat-{args.size}-{args.year}", spec)
    build_s = time.perf_counter() - start
    work = Path(tempfile.mkdtemp(prefix="cubehub-bench-landsat-"))
    try:
        with serve_files(archive.root) as files:
            items = archive.write_item_collection(work / "items.json", files.url)
            with (
                serve_stac_api(items, archive.collection_dict()) as api,
                cluster("local") as client,
            ):
                workers = client.scheduler_info()["workers"].values()
                print(
                    f"cluster: {len(workers)} worker process(es), "
                    f"{sum(w['nthreads'] for w in workers)} threads"
                )
                job = demo_job(archive, api.url, work / "composite.zarr")
                x0, _, _, y1 = archive.bounds
                corner = (x0, y1 - 960.0, x0 + 960.0, y1)  # 32 x 32 px
                warm = job.model_copy(update={"bounds": corner, "output": str(work / "warm.zarr")})
                run_job(warm, client, show_progress=False)
                requests_before, bytes_before = files.stats.range_requests, files.stats.bytes_sent
                client.run(lambda: __import__("gc").collect())
                with PeakMemory(client) as memory:
                    started = time.perf_counter()
                    result = run_job(job, client, show_progress=False)
                    seconds = time.perf_counter() - started
                requests = files.stats.range_requests - requests_before
                mib_read = (files.stats.bytes_sent - bytes_before) / 2**20
    finally:
        shutil.rmtree(work, ignore_errors=True)

    pixels = args.size**2
    print(
        f"\n{args.size} x {args.size} px at 30 m, ODSE {args.year}: {result.items_found} items, "
        f"{result.observations} observations; {len(job.bands)} bands + NDVI, p25/p50/p75, "
        f"4 seasons, tiles of {job.tile_size} px, chunks of {job.chunk_size} px\n"
    )
    print(f"archive build        {build_s:8.1f} s (about 0 when reused from --cache)")
    print(f"composite (run_job)  {seconds:8.1f} s   {pixels / seconds / 1e6:.4g} Mpx/s of output")
    print(f"read                 {requests:8d} HTTP range requests, {mib_read:.1f} MiB")
    print(f"peak RSS above idle  {memory.max_above_idle_mib():8.0f} MiB (busiest worker)")


if __name__ == "__main__":
    main()
