"""COG export: peak memory and throughput of cubehub's window-by-window writer against
rasterio's COG driver, at a few layer sizes.

Each run exports the three percentile layers (p25/p50/p75) of one variable and season from
a Zarr array on disk (uint16 DNs, smooth fields plus noise, 512 px chunks, zero as nodata
in a corner), in a fresh process so that its peak RSS (``ru_maxrss``) is its own:

* ``cubehub``: :func:`cubehub.output.cog.write_cogs` (windows of 2048 px into a staging
  GeoTIFF, then GDAL's COG driver copies it);
* ``rasterio-cog``: ``rasterio.open(..., "w", driver="COG")`` written window by window
  with the same windows (rasterio buffers the dataset and copies it when closed).

Run from the repository root::

    .venv/bin/python benchmarks/bench_export.py                    # 2048, 4096, 8192 px
    .venv/bin/python benchmarks/bench_export.py --sizes 1024 2048  # quicker

``peak MiB`` is the process's peak RSS above its RSS after the imports and the Zarr array's
creation; ``MB/s`` is raw (uncompressed) bytes of the three layers per second of wall clock,
1 MB = 1e6 bytes; ``COG MB`` the size of the three files.
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
from pathlib import Path

PERCENTILES = 3
CHUNK = 512


def make_source(path: Path, size: int) -> None:
    """(percentile, y, x) uint16 DNs as a Zarr array, written chunk by chunk."""
    import numpy as np
    import zarr

    arr = zarr.create_array(
        str(path),
        shape=(PERCENTILES, size, size),
        chunks=(PERCENTILES, CHUNK, CHUNK),
        dtype="uint16",
    )
    rng = np.random.default_rng(0)
    for y0 in range(0, size, CHUNK):
        for x0 in range(0, size, CHUNK):
            y, x = np.meshgrid(
                np.arange(y0, min(y0 + CHUNK, size)),
                np.arange(x0, min(x0 + CHUNK, size)),
                indexing="ij",
            )
            base = 1500 + 800 * np.sin(y / 37.0) * np.cos(x / 53.0)
            block = np.stack([base + 200 * q for q in range(PERCENTILES)])
            block += rng.normal(0, 40, block.shape)
            arr[:, y0 : y0 + block.shape[1], x0 : x0 + block.shape[2]] = block.astype("uint16")
    arr[:, :100, :100] = 0


def run_one(method: str, source: Path, out: Path) -> dict[str, float]:
    """One export in this process; prints nothing, returns the figures."""
    import dask.array as da
    import numpy as np
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import Affine
    from rasterio.windows import Window

    from cubehub.output.cog import CogLayer, windows, write_cogs

    lazy = da.from_zarr(str(source))
    size = lazy.shape[1]
    idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    crs, transform = CRS.from_epsg(3035), Affine(30.0, 0.0, 4e6, 0.0, -30.0, 3e6)
    paths = [out / f"{method}-p{q}.tif" for q in (25, 50, 75)]
    started = time.perf_counter()
    if method == "cubehub":
        layers = [CogLayer(p, nodata=0, scale=2.75e-5, offset=-0.2, unit="1") for p in paths]
        write_cogs(layers, [lazy[q] for q in range(PERCENTILES)], crs=crs, transform=transform)
    else:
        profile = {
            "driver": "COG",
            "width": size,
            "height": size,
            "count": 1,
            "dtype": "uint16",
            "crs": crs,
            "transform": transform,
            "nodata": 0,
            "compress": "DEFLATE",
            "predictor": "YES",
            "blocksize": 512,
        }
        sinks = [rasterio.open(p, "w", **profile) for p in paths]
        for ys, xs in windows(size, size, 2048):
            block = np.asarray(lazy[:, ys, xs].compute(scheduler="threads"))
            box = Window(xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start)
            for q, sink in enumerate(sinks):
                sink.write(block[q], 1, window=box)
        for sink in sinks:
            sink.close()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": seconds,
        "peak_mib": (peak - idle) / 1024,
        "raw_mb": PERCENTILES * size * size * 2 / 1e6,
        "cog_mb": sum(p.stat().st_size for p in paths) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument(
        "--one", nargs=3, metavar=("METHOD", "SOURCE", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:
        method, source, out = args.one
        print(json.dumps(run_one(method, Path(source), Path(out))))
        return
    print(f"{PERCENTILES} uint16 layers a run, {CHUNK} px Zarr chunks; {os.cpu_count()} cores")
    print(
        f"{'size':>6} {'method':<13} {'raw MB':>7} {'s':>7} {'MB/s':>7} {'peak MiB':>9} {'COG MB':>7}"
    )
    with tempfile.TemporaryDirectory(prefix="cubehub-bench-export-") as tmp:
        for size in args.sizes:
            source = Path(tmp) / f"source-{size}.zarr"
            make_source(source, size)
            for method in ("cubehub", "rasterio-cog"):
                out = Path(tmp) / f"{method}-{size}"
                out.mkdir()
                done = subprocess.run(
                    [sys.executable, __file__, "--one", method, str(source), str(out)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                r = json.loads(done.stdout.strip().splitlines()[-1])
                print(
                    f"{size:>6} {method:<13} {r['raw_mb']:>7.0f} {r['seconds']:>7.1f} "
                    f"{r['raw_mb'] / r['seconds']:>7.1f} {r['peak_mib']:>9.0f} {r['cog_mb']:>7.1f}"
                )


if __name__ == "__main__":
    main()
