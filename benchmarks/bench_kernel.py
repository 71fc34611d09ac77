"""Percentile kernels side by side: cubehub against numpy, numbagg, odc-algo and xarray.

Run from the repository root::

    .venv/bin/python benchmarks/bench_kernel.py          # 1024 x 1024 pixels
    .venv/bin/python benchmarks/bench_kernel.py --quick  # 256 x 256 pixels

For T = 12, 24, 48 observations of uint16 reflectances (1..10000, nodata 0, 30 % of the
observations missing at random) every method computes p25, p50 and p75 over time. The
table gives spatial pixels per second (all three percentiles together) of wall-clock and
of CPU time, the peak of memory allocated while it ran (tracemalloc, in a separate
untimed run; numba's per-thread sort buffers, at most 512 KiB each, are not traced), how
many times faster cubehub's numpy path is, and how well each method agrees with
cubehub's "linear" definition on a 64 x 64 sample. Float peers get float32 data with NaN
for the gaps.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import dask
import dask.array as da
import numbagg
import numpy as np
import xarray as xr
from odc.algo import xr_quantile

from cubehub.compute.percentile import percentiles, percentiles_dask

Q = (25.0, 50.0, 75.0)
FRACTIONS = [p / 100 for p in Q]
MISSING = 0.3
THREADS = 2
CHUNK = 256
SAMPLE = 64


@dataclass(frozen=True)
class Inputs:
    """One stack in the forms the methods take; dask arrays are built before timing."""

    values: np.ndarray  # uint16, nodata 0
    floats: np.ndarray  # float32, NaN gaps
    lazy_values: da.Array
    lazy_floats: da.Array

    @classmethod
    def of(cls, values: np.ndarray) -> Inputs:
        floats = values.astype(np.float32)
        floats[values == 0] = np.nan
        return cls(values, floats, in_chunks(values), in_chunks(floats))

    def window(self, size: int) -> Inputs:
        return Inputs.of(self.values[:, :size, :size])


@dataclass(frozen=True)
class Method:
    name: str
    note: str
    run: Callable[[Inputs], np.ndarray]  # -> (3, y, x) percentiles
    subset: int | None = None  # time only a subset x subset window (too slow otherwise)


def stack(steps: int, size: int, seed: int = 42) -> np.ndarray:
    """uint16 reflectances 1..10000 with nodata 0 for the missing observations."""
    rng = np.random.default_rng(seed)
    values = rng.integers(1, 10_001, (steps, size, size), dtype=np.uint16)
    values[rng.random(values.shape) < MISSING] = 0
    return values


def in_chunks(array: np.ndarray) -> da.Array:
    """A dask array of CHUNK x CHUNK blocks, each its own contiguous array in memory,
    as blocks are after a read (slicing one big array would add a copy per block)."""
    rows = range(0, array.shape[1], CHUNK)
    cols = range(0, array.shape[2], CHUNK)
    return da.block(
        [
            [da.from_array(array[:, r : r + CHUNK, c : c + CHUNK].copy(), chunks=-1) for c in cols]
            for r in rows
        ]
    )


def cubehub_numpy(threads: int) -> Callable[[Inputs], np.ndarray]:
    return lambda data: percentiles(data.values, Q, nodata=0, threads=threads)[0]


def cubehub_dask(data: Inputs) -> np.ndarray:
    out, count = percentiles_dask(data.lazy_values, Q, nodata=0)
    return dask.compute(out, count)[0]


def numpy_nanpercentile(data: Inputs) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        return np.nanpercentile(data.floats, Q, axis=0)


def numbagg_nanquantile(data: Inputs) -> np.ndarray:
    return numbagg.nanquantile(data.floats, FRACTIONS, axis=0)


def odc_xr_quantile(data: Inputs) -> np.ndarray:
    ds = xr.Dataset({"band": (("time", "y", "x"), data.lazy_values)})
    return xr_quantile(ds, FRACTIONS, nodata=0)["band"].compute().values


def xarray_quantile(data: Inputs) -> np.ndarray:
    array = xr.DataArray(data.lazy_floats, dims=("time", "y", "x"))
    return array.quantile(FRACTIONS, dim="time").values


METHODS = [
    Method("cubehub", f"numpy path, {THREADS} threads", cubehub_numpy(THREADS)),
    Method("cubehub", "numpy path, 1 thread", cubehub_numpy(1)),
    Method("cubehub dask", f"{CHUNK}^2 chunks, {THREADS} threads", cubehub_dask),
    Method("np.nanpercentile", "float32+NaN, 1 thread", numpy_nanpercentile, subset=96),
    Method("numbagg.nanquantile", "float32+NaN, numba parallel", numbagg_nanquantile),
    Method("odc-algo xr_quantile", f"uint16, dask {CHUNK}^2, {THREADS} thr", odc_xr_quantile),
    Method("xarray quantile", f"float32+NaN, dask {CHUNK}^2 (numbagg)", xarray_quantile),
]


def timed(method: Method, data: Inputs) -> tuple[float, float]:
    """Best wall and best CPU seconds (all threads) of up to five runs (one if slow)."""
    wall = cpu = np.inf
    for _ in range(5):
        start, start_cpu = time.perf_counter(), time.process_time()
        method.run(data)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
        if wall > 1.0:
            break
    return wall, cpu


def peak_mib(method: Method, data: Inputs) -> float:
    tracemalloc.start()
    try:
        method.run(data)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def agreement(method: Method, sample: Inputs, want: np.ndarray) -> str:
    """Share of sample pixels where all three percentiles equal cubehub's, and max diff."""
    got = np.asarray(method.run(sample), np.float32)
    if method.name.startswith("odc-algo"):
        # odc-algo: value at index round(q * (n - 1)), and nodata (0) below 3 observations.
        usable = (sample.values != 0).sum(axis=0) >= 3
        definition = "own def."
    else:
        usable = ~np.isnan(want).any(axis=0)
        definition = "linear"
    equal = (got == want).all(axis=0) & usable
    diff = np.abs(got.astype(np.float64) - want)[:, usable].max(initial=0.0)
    return f"{equal.sum() / usable.sum():6.1%} equal, max |d| {diff:g} ({definition})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 x 256 pixels instead of 1024")
    args = parser.parse_args()
    size = 256 if args.quick else 1024
    dask.config.set(scheduler="threads", num_workers=THREADS)
    print(f"{size} x {size} pixels, uint16 1..10000, {MISSING:.0%} missing, q = {Q}")
    header = (
        f"{'T':>3} {'method':<21} {'setup':<33} {'pixels':>8} {'Mpx/s':>8} {'Mpx/CPU-s':>9} "
        f"{'peak MiB':>9} {'cubehub x':>10}  agreement on {SAMPLE}x{SAMPLE} sample"
    )
    print(header)
    print("-" * len(header))
    for steps in (12, 24, 48):
        data = Inputs.of(stack(steps, size))
        sample = data.window(SAMPLE)
        want = percentiles(sample.values, Q, nodata=0)[0]
        reference_speed = None
        for method in METHODS:
            method.run(sample)  # warm up: numba compilation, imports
            timed_data = data if method.subset is None else data.window(method.subset)
            seconds, cpu_seconds = timed(method, timed_data)
            pixels = timed_data.values.shape[1] * timed_data.values.shape[2]
            speed = pixels / seconds / 1e6
            reference_speed = reference_speed or speed  # the first row is cubehub's numpy path
            mib = peak_mib(method, timed_data)
            scope = f"{pixels} *" if method.subset is not None else f"{pixels}"
            print(
                f"{steps:>3} {method.name:<21} {method.note:<33} {scope:>8} {speed:8.3f} "
                f"{pixels / cpu_seconds / 1e6:9.3f} {mib:9.1f} {reference_speed / speed:9.1f}x  "
                f"{agreement(method, sample, want)}"
            )
        print()
    print(
        "* timed on a subset of the pixels (too slow for all); Mpx/s and memory are for"
        " that subset.\nMpx/s: wall clock, best run; Mpx/CPU-s: per second of CPU time of"
        " all threads (less\nsensitive to other load). 'cubehub x': how many times faster"
        " (wall) cubehub's 2-thread numpy path is."
    )


if __name__ == "__main__":
    main()
