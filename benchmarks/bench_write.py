"""Write throughput of a composite store: a local S3 server against a local directory.

The same lazy composite (ODSE year: 4 seasons x p25/p50/p75 of six reflectance bands and
NDVI, plus valid_count; smooth fields with noise, encoded as the pipeline encodes them) is
written through :class:`cubehub.output.zarr_store.CompositeStore` exactly as a job writes it: template
first, then every tile as chunk-aligned regions with its completion records. Targets: a
local folder, and ``s3://`` on SeaweedFS on loopback (:mod:`cubehub.demo.s3`), which adds
HTTP, request signing and the S3 gateway on the same 2 cores. The data are in memory
before the clock starts; the "encode only" line applies the CF encoding (scale, offset,
fill, integer cast) without compressing or writing, to show what the writes add.

Run from the repository root::

    .venv/bin/python benchmarks/bench_write.py              # 2048 x 2048 px, 512 px chunks
    .venv/bin/python benchmarks/bench_write.py --size 1024  # quicker

MB/s are of raw (uncompressed) bytes and of stored (compressed) bytes, 1 MB = 1e6 bytes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr

from cubehub.demo.s3 import serve_s3
from cubehub.grid import OutputGrid
from cubehub.output.encoding import encode_composite
from cubehub.output.storage import filesystem
from cubehub.output.zarr_store import CompositeStore
from cubehub.pipeline import template
from cubehub.seasons import odse_quarters
from cubehub.tiles import split_grid

BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
X0, Y1 = 560_000.0, 5_230_000.0


def synthetic_composite(size: int, chunk: int) -> xr.Dataset:
    """Smooth reflectance fields plus noise, rounded to 1e-4 like real DNs; deterministic."""
    calendar = odse_quarters([2022])
    q = [25.0, 50.0, 75.0]

    def field(block_info: dict | None = None, *, seed: int) -> np.ndarray:
        assert block_info is not None
        loc = block_info[None]["array-location"]
        shape = block_info[None]["chunk-shape"]
        s, p, y, x = np.meshgrid(*(np.arange(a, b) for a, b in loc), indexing="ij", sparse=True)
        rng = np.random.default_rng([seed, *[a for a, _ in loc]])
        base = 0.15 + 0.1 * np.sin(y / 37.0 + seed) * np.cos(x / 53.0) + 0.02 * s + 0.01 * p
        return np.round(base + rng.normal(0, 0.01, shape), 4).astype(np.float32)

    chunks = ((1,) * 4, (3,), *(((chunk,) * (size // chunk),) * 2))
    data = {
        name: (
            ("season", "percentile", "y", "x"),
            da.map_blocks(field, seed=k, chunks=chunks, dtype=np.float32),
        )
        for k, name in enumerate((*BANDS, "NDVI"))
    }
    counts = da.full((4, size, size), 12, dtype=np.uint16, chunks=(1, chunk, chunk))
    data["valid_count"] = (("season", "y", "x"), counts)
    centres = (np.arange(size) + 0.5) * 10.0
    ds = xr.Dataset(
        data,
        coords={
            "season": [w.label for w in calendar.windows],
            "season_start": (
                "season",
                np.array([w.start for w in calendar.windows], dtype="datetime64[ns]"),
            ),
            "season_end": (
                "season",
                np.array([w.end for w in calendar.windows], dtype="datetime64[ns]"),
            ),
            "percentile": q,
            "y": Y1 - centres,
            "x": X0 + centres,
        },
    )
    ds = ds.rio.write_crs(32633).rio.write_coordinate_system()
    ds = encode_composite(ds, {b: (1e-4, -0.1) for b in BANDS})
    ds.attrs["cubehub_job"] = "{}"
    return ds


def raw_bytes(ds: xr.Dataset) -> int:
    return sum(
        int(np.prod(v.shape)) * np.dtype(v.encoding["dtype"]).itemsize
        for v in ds.data_vars.values()
    )


def write(url: str, ds: xr.Dataset, tile: int, chunk: int) -> float:
    """Seconds to create the store and write every tile (threads scheduler, as one worker)."""
    size = ds.sizes["y"]
    grid = OutputGrid(32633, 10.0, (X0, Y1 - size * 10.0, X0 + size * 10.0, Y1))
    tiles = split_grid(grid, tile, chunk)
    started = time.perf_counter()
    store = CompositeStore.open_or_create(
        url,
        template(ds.isel(y=slice(0, tile), x=slice(0, tile)), grid, chunk),
        tiles,
        overwrite=True,
    )
    for t in tiles:
        (result,) = dask.compute(
            store.write_tile(ds.isel(y=slice(*t.y), x=slice(*t.x)), t), scheduler="threads"
        )
        store.mark_complete(t, result)
    return time.perf_counter() - started


def stored(url: str) -> tuple[int, int]:
    """(bytes, objects) of the data chunks under ``url``."""
    fs, path = filesystem(url)
    fs.invalidate_cache()
    sizes = [size for name, size in fs.du(path, total=False).items() if "/c/" in name]
    return sum(sizes), len(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="grid edge, pixels (default 2048)")
    parser.add_argument("--chunk", type=int, default=512, help="chunk edge, pixels (default 512)")
    parser.add_argument("--tile", type=int, default=1024, help="tile edge, pixels (default 1024)")
    args = parser.parse_args()
    # In memory first, so that the timings are of encoding and writing, not of making data.
    ds = synthetic_composite(args.size, args.chunk).persist(scheduler="threads")
    raw = raw_bytes(ds)
    print(
        f"composite {args.size} x {args.size} px, {len(ds.data_vars)} variables, {raw / 1e6:.0f} MB raw; "
        f"chunks {args.chunk} px, tiles {args.tile} px; {os.cpu_count()} cores"
    )
    t0 = time.perf_counter()
    encoded = [
        xr.conventions.encode_cf_variable(v.variable, name=str(n)).data
        for n, v in ds.data_vars.items()
    ]
    dask.compute(*[e.sum() for e in encoded], scheduler="threads")
    encode_s = time.perf_counter() - t0
    print(
        f"{'target':<14} {'seconds':>8} {'raw MB/s':>9} {'stored MB/s':>12} {'ratio':>6} {'objects':>8}"
    )
    print(f"{'encode only':<14} {encode_s:8.2f} {raw / 1e6 / encode_s:9.1f}")
    with tempfile.TemporaryDirectory(prefix="cubehub-bench-") as tmp:
        results = {}
        local = str(Path(tmp) / "local.zarr")
        results["local folder"] = (local, write(local, ds, args.tile, args.chunk))
        with serve_s3(Path(tmp) / "s3", buckets=["bench"]) as s3:
            os.environ.update(s3.env())
            url = "s3://bench/composite.zarr"
            results["local S3"] = (url, write(url, ds, args.tile, args.chunk))
            for target, (where, seconds) in results.items():
                nbytes, objects = stored(where)
                print(
                    f"{target:<14} {seconds:8.2f} {raw / 1e6 / seconds:9.1f} {nbytes / 1e6 / seconds:12.1f} "
                    f"{raw / nbytes:6.2f} {objects:8d}"
                )


if __name__ == "__main__":
    main()
