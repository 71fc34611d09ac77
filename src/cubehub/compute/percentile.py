"""Per-pixel percentiles over time: the kernel behind every seasonal composite.

``percentiles(values, q)`` reduces axis 0 (time) of a ``(T, *spatial)`` stack to
``(len(q), *spatial)`` float32 percentiles and a ``uint16`` count of valid observations,
computing every requested percentile in one sort per pixel, on the native dtype.

Definitions (``n`` is the number of valid observations of a pixel, ``x_(1) <= ... <=
x_(n)`` their sorted values):

* ``"linear"`` (default; Hyndman & Fan type 7, numpy's and openEO's default): equal to
  ``numpy.nanpercentile(valid, q, method="linear")`` computed in float64 and cast to
  float32. The virtual index ``(n - 1) * (q / 100)``, its floor and fraction ``g`` are
  computed in float64 exactly as numpy does, and so is the interpolation (numpy's
  ``_lerp``: ``a + (b - a) * g``, or ``b - (b - a) * (1 - g)`` when ``g >= 0.5``). Float32
  input is promoted to float64 first, so it equals numpy on the values promoted to
  float64 (numpy on the float32 data itself rounds ``b - a`` to float32 and can differ in
  the last bit).
* ``"nearest"``: nearest rank, ``x_(r)`` with ``r = max(1, ceil(q / 100 * n))``, the rank
  computed exactly from the binary value of ``q``. Every output is an observed value.

Missing values: for integer dtypes ``nodata`` marks them (``None``: nothing is missing);
for floats NaN is missing, and ``nodata`` too if given. Infinite floats are valid
observations ("linear" then follows numpy's arithmetic, which gives NaN where it
interpolates at or next to an infinity). Pixels with fewer than ``min_count`` valid observations are NaN (their
count is still reported).

How it is fast (``benchmarks/bench_kernel.py`` measures it against numpy, numbagg,
odc-algo and xarray): pixels are processed in blocks along the flattened spatial axis. A
``(T, block)`` slab is copied into a buffer that stays in the L2 cache, missing values replaced by a sentinel that sorts last (the dtype's maximum, or
+inf), while valid observations are counted separately (so real values equal to the
sentinel still count). Each column is then sorted by Batcher's odd-even merge sorting
network applied *across pixels*: a compare-exchange of rows ``i < j`` is an elementwise
min/max of two vectors, which LLVM turns into SIMD instructions, with no branches. The
order statistics are finally read at the ranks tabulated for each possible count.

The numba kernel is compiled per dtype (``nogil=True, cache=True``) and is serial.
:func:`percentiles` runs it on several Python threads over disjoint pixel ranges
(``threads``, default all usable CPUs); :func:`percentiles_dask` runs it serially in each
block, so Dask's own threads are the only parallelism and nothing is oversubscribed.

Why it is long: the kernel, the sorting network and rank tables it reads, and the checks
that build them (:func:`plan_percentiles`) are one definition of the percentile; split,
the exactness contract above would be spread over modules.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, get_args

import dask.array as da
import numba
import numpy as np

from cubehub.errors import InputError

__all__ = ["DEFAULT_PERCENTILES", "Method", "check_percentiles", "percentiles", "percentiles_dask"]

Method = Literal["linear", "nearest"]
#: The ODSE/GLAD product's percentiles, in percent (0..100, not fractions).
DEFAULT_PERCENTILES: tuple[float, ...] = (25.0, 50.0, 75.0)

#: Dtypes the kernel is compiled for; convert others with ``astype`` first.
SUPPORTED_DTYPES = tuple(
    np.dtype(t) for t in ("uint8", "uint16", "int16", "int32", "float32", "float64")
)
#: Counts are reported as uint16, so a stack may hold at most this many observations.
MAX_OBSERVATIONS = int(np.iinfo(np.uint16).max)
#: Target size of the per-block sort buffer: it should stay in the L2 cache. Wider
#: blocks spread the per-comparator loop overhead over more pixels (measured: 4096
#: pixels beat 256 by 8-45 % for T = 24..70, uint16 and float32).
_BUFFER_BYTES = 512 * 1024
_MAX_WIDTH = 4096
#: Fewer spatial pixels than this per thread are not worth a thread of their own.
_MIN_PIXELS_PER_THREAD = 64 * 1024
#: The kernel's ``keep`` argument where nothing is masked (never indexed then).
_NO_MASK = np.empty((0, 0), np.bool_)


@dataclass(frozen=True)
class PercentilePlan:
    """Everything the kernel needs besides the data, validated before any compute (made by
    :func:`plan_percentiles`, run by :func:`fill_percentiles`)."""

    nq: int
    nodata: np.generic
    has_nodata: bool
    sentinel: np.generic
    network: np.ndarray  # (comparators, 2) int32 wire pairs, lower wire first
    lo: np.ndarray  # (nq, T + 1) index of the lower order statistic, per count
    hi: np.ndarray  # (nq, T + 1) index of the upper order statistic, per count
    gamma: np.ndarray  # (nq, T + 1) float64 interpolation weight, per count
    gamma_c: np.ndarray  # 1 - gamma, as numpy's _lerp computes it
    interpolate: bool  # False: read the order statistic at ``lo`` as it is ("nearest")
    min_count: int
    width: int  # pixels per block


def percentiles(
    values: np.ndarray,
    q: Sequence[float],
    *,
    nodata: int | float | None = None,
    method: Method = "linear",
    min_count: int = 1,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentiles ``q`` (0..100) of ``values`` over axis 0, per pixel, in one pass.

    Args:
        values: ``(T, *spatial)`` stack of uint8, uint16, int16, int32, float32 or
            float64; ``T`` at most 65535.
        q: percentiles in percent, each within [0, 100], e.g. ``(25, 50, 75)``.
        nodata: value marking missing observations (must fit the dtype); ``None``
            (default) means integer data has no missing values. NaN is always missing
            in float data.
        method: ``"linear"`` (default, numpy's type 7) or ``"nearest"`` (nearest rank);
            see the module docstring for the exact definitions.
        min_count: pixels with fewer valid observations get NaN (default 1).
        threads: worker threads over disjoint pixel ranges; default all usable CPUs.
            Pass 1 when the caller already runs in parallel (as in Dask tasks).

    Returns:
        ``(out, count)``: ``out`` float32 of shape ``(len(q), *spatial)``, NaN where
        ``count < min_count``; ``count`` uint16 of shape ``spatial``.

    >>> out, count = percentiles(np.array([[3], [0], [1], [2]], np.uint16), [0, 50, 100], nodata=0)
    >>> out[:, 0].tolist(), count.tolist()
    ([1.0, 2.0, 3.0], [3])
    """
    if isinstance(values, da.Array):  # np.asarray would compute it all, here, at once
        raise InputError("percentiles takes a numpy array; use percentiles_dask for dask arrays")
    values = np.asarray(values)
    plan = plan_percentiles(values.dtype, values.shape, q, nodata, method, min_count)
    if threads is None:
        threads = _usable_cpus()
    elif isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"threads must be a positive integer or None, got {threads!r}")
    spatial = values.shape[1:]
    out = np.empty((plan.nq, math.prod(spatial)), np.float32)
    count = np.empty(math.prod(spatial), np.uint16)
    fill_percentiles(values, plan, threads, out, count)
    return out.reshape(plan.nq, *spatial), count.reshape(spatial)


def percentiles_dask(
    values: da.Array,
    q: Sequence[float],
    *,
    nodata: int | float | None = None,
    method: Method = "linear",
    min_count: int = 1,
) -> tuple[da.Array, da.Array]:
    """Lazy :func:`percentiles` of a Dask array, block by block (same arguments).

    Time (axis 0) must be one chunk; if it is not, only axis 0 is rechunked (the cube
    layer already gives a season one chunk). Spatial chunks are kept: ``out`` has chunks
    ``((len(q),), *spatial chunks)`` and ``count`` the spatial chunks. Each block runs the
    serial kernel, so the Dask threads are the only parallelism. ``out`` and ``count``
    come from the same tasks: compute or store them together to sort each block once.
    """
    if not isinstance(values, da.Array):
        raise InputError(
            f"percentiles_dask takes a dask array, got {type(values).__name__}; "
            "use percentiles() for numpy arrays"
        )
    if any(math.isnan(size) for size in values.shape):
        raise InputError(
            f"dask array of unknown shape {values.shape}; call compute_chunk_sizes() first"
        )
    plan = plan_percentiles(values.dtype, values.shape, q, nodata, method, min_count)
    if values.numblocks[0] > 1:
        values = values.rechunk({0: -1})
    # One block function returns percentiles and count together (the count as an extra
    # float32 plane, exact up to 2**24) so that each block is sorted only once.
    packed = da.map_blocks(
        _packed_block,
        values,
        plan=plan,
        chunks=((plan.nq + 1,), *values.chunks[1:]),
        dtype=np.float32,
        meta=np.empty((0,) * values.ndim, np.float32),
    )
    return packed[: plan.nq], packed[plan.nq].astype(np.uint16)


def _packed_block(block: np.ndarray, plan: PercentilePlan) -> np.ndarray:
    """Percentiles of one block with its count as a last float32 plane, no extra copy."""
    pixels = math.prod(block.shape[1:])
    packed = np.empty((plan.nq + 1, pixels), np.float32)
    count = np.empty(pixels, np.uint16)
    fill_percentiles(block, plan, 1, packed[: plan.nq], count)
    packed[plan.nq] = count
    return packed.reshape(plan.nq + 1, *block.shape[1:])


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def fill_percentiles(
    values: np.ndarray,
    plan: PercentilePlan,
    threads: int,
    out: np.ndarray,
    count: np.ndarray,
    keep: np.ndarray | None = None,
) -> None:
    """Run the kernel on ``values`` (T, *spatial) into ``out`` (nq, P) and ``count`` (P,),
    both C-contiguous, over ``threads`` pixel ranges (P: the spatial pixels); where
    ``keep`` (boolean, the shape of ``values``; default None: all) is False, observations
    count as missing."""
    pixels = count.shape[0]
    flat = np.ascontiguousarray(values).reshape(values.shape[0], pixels)
    kept = (
        _NO_MASK
        if keep is None
        else np.ascontiguousarray(keep, dtype=np.bool_).reshape(values.shape[0], pixels)
    )
    threads = max(1, min(threads, pixels // _MIN_PIXELS_PER_THREAD))
    # Range bounds are multiples of the block width so every thread sees whole blocks.
    step = max(1, math.ceil(pixels / threads / plan.width)) * plan.width
    ranges = [(start, min(start + step, pixels)) for start in range(0, pixels, step)]

    def work(bounds: tuple[int, int]) -> None:
        _kernel(
            flat, plan.nodata, plan.has_nodata, plan.sentinel, plan.network, plan.lo,
            plan.hi, plan.gamma, plan.gamma_c, plan.interpolate, plan.min_count, plan.width,
            bounds[0], bounds[1], out, count, kept, keep is not None,
        )  # fmt: skip

    if len(ranges) > 1:
        with ThreadPoolExecutor(len(ranges), thread_name_prefix="cubehub-percentile") as pool:
            list(pool.map(work, ranges))
    elif ranges:
        work(ranges[0])


def plan_percentiles(
    dtype: np.dtype,
    shape: tuple[int, ...],
    q: Sequence[float],
    nodata: int | float | None,
    method: str,
    min_count: int,
) -> PercentilePlan:
    """Validate the arguments of :func:`percentiles` for ``values`` of ``dtype`` and ``shape``
    (cheaply, before any compute) and build the kernel tables."""
    if dtype not in SUPPORTED_DTYPES:
        names = ", ".join(str(d) for d in SUPPORTED_DTYPES)
        raise InputError(f"percentiles of dtype {dtype} are not supported; use one of {names}")
    if len(shape) < 1:
        raise InputError("percentiles need at least a time axis (axis 0); got a scalar")
    steps = shape[0]
    if steps > MAX_OBSERVATIONS:
        raise InputError(
            f"{steps} observations along axis 0 exceed {MAX_OBSERVATIONS} (counts are "
            "uint16); split the time axis"
        )
    if method not in get_args(Method):
        raise InputError(f"unknown percentile method {method!r}; valid: linear, nearest")
    if isinstance(min_count, bool) or not isinstance(min_count, int | np.integer) or min_count < 1:
        raise InputError(f"min_count must be an integer >= 1, got {min_count!r}")
    qs = _validate_q(q)
    nodata_value, has_nodata = _validate_nodata(dtype, nodata)
    # Missing values become a sentinel that sorts after every valid value.
    sentinel = dtype.type(np.inf) if dtype.kind == "f" else dtype.type(np.iinfo(dtype).max)
    lo, hi, gamma = (_linear_table if method == "linear" else _nearest_table)(steps, qs)
    width = _BUFFER_BYTES // max(1, steps * dtype.itemsize) // 64 * 64
    width = max(64, min(_MAX_WIDTH, width))
    return PercentilePlan(
        nq=len(qs),
        nodata=nodata_value,
        has_nodata=has_nodata,
        sentinel=sentinel,
        network=_sorting_network(steps),
        lo=lo,
        hi=hi,
        gamma=gamma,
        gamma_c=1.0 - gamma,
        interpolate=method == "linear",
        min_count=int(min_count),
        width=width,
    )


def _validate_q(q: Sequence[float]) -> tuple[float, ...]:
    if isinstance(q, str) or not isinstance(q, Sequence | np.ndarray):
        raise InputError(f"q must be a sequence of percentiles such as [25, 50, 75], got {q!r}")
    try:
        qs = tuple(float(p) for p in q)
    except (TypeError, ValueError) as err:
        raise InputError(f"q must hold numbers (percent, 0..100), got {q!r}") from err
    if not qs:
        raise InputError("q is empty; pass at least one percentile, e.g. [50]")
    bad = [p for p in qs if not 0.0 <= p <= 100.0]  # also catches NaN
    if bad:
        raise InputError(f"percentiles {bad} are outside [0, 100]; q is in percent, not 0..1")
    return qs


def check_percentiles(q: Sequence[float]) -> tuple[float, ...]:
    """Percentiles a person asked for, in percent: as the kernel takes them, and not fractions.

    ``[0.25, 0.5, 0.75]`` is almost always meant as ``[25, 50, 75]`` (the minimum and two
    values near it otherwise), so percentiles that are all within 0..1, one of them strictly
    between, are refused with that fix. The kernel itself computes any percentile in 0..100.

    >>> check_percentiles([25, 50, 75])
    (25.0, 50.0, 75.0)
    """
    qs = _validate_q(q)
    if max(qs) <= 1.0 and any(0.0 < p < 1.0 for p in qs):
        meant = ", ".join(f"{p * 100:g}" for p in qs)
        raise InputError(
            f"percentiles are in percent (0..100), and {list(qs)} look like fractions: did you "
            f"mean [{meant}]?"
        )
    return qs


def _validate_nodata(dtype: np.dtype, nodata: int | float | None) -> tuple[np.generic, bool]:
    """``nodata`` as a scalar of ``dtype``, and whether one was given."""
    if nodata is None:
        return dtype.type(0), False
    if isinstance(nodata, bool) or not isinstance(nodata, int | float | np.number):
        raise InputError(f"nodata must be a number or None, got {nodata!r}")
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            value = dtype.type(nodata)
        if np.isinf(value) and not np.isinf(nodata):
            raise InputError(f"nodata {nodata!r} does not fit {dtype}: it overflows to infinity")
        return value, True
    info = np.iinfo(dtype)
    if not float(nodata).is_integer() or not info.min <= nodata <= info.max:
        raise InputError(
            f"nodata {nodata!r} cannot occur in {dtype} data (integers {info.min}..{info.max}); "
            "pass the value the data uses for missing pixels"
        )
    return dtype.type(int(nodata)), True


def _linear_table(steps: int, qs: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """Order-statistic indices and weights of numpy's "linear" method for n = 0..steps."""
    fractions = np.true_divide(np.asarray(qs, np.float64), 100)
    n = np.arange(steps + 1)
    last = np.maximum(n - 1, 0)
    virtual = (n - 1) * fractions[:, np.newaxis]  # numpy's (n - 1) * quantiles, float64
    below = np.floor(virtual)
    lo = np.clip(below, 0, last).astype(np.intp)
    hi = np.clip(below + 1, 0, last).astype(np.intp)
    gamma = np.where(virtual >= last, 0.0, virtual - below)
    return lo, hi, gamma


def _nearest_table(steps: int, qs: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """Index of rank max(1, ceil(q / 100 * n)) for n = 0..steps, in exact integers."""
    lo = np.zeros((len(qs), steps + 1), np.intp)
    for k, p in enumerate(qs):
        num, den = p.as_integer_ratio()
        for n in range(1, steps + 1):
            lo[k, n] = max(1, -(-num * n // (100 * den))) - 1
    return lo, lo, np.zeros(lo.shape, np.float64)


@lru_cache(maxsize=64)
def _sorting_network(size: int) -> np.ndarray:
    """Batcher's odd-even merge sort for ``size`` wires, as (lower, upper) wire pairs.

    The iterative form for any ``size`` is the power-of-two network with every comparator
    that touches a wire >= ``size`` removed. That is exact: padded with +infinity, those
    wires would keep +infinity (a comparator moves the larger value to the higher wire),
    so their comparators never exchange anything.
    """
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    network = np.array(pairs, np.int32).reshape(-1, 2)
    network.setflags(write=False)
    return network


@numba.njit(nogil=True, cache=True)
def _kernel(
    values: np.ndarray, nodata: np.generic, has_nodata: bool, sentinel: np.generic,
    network: np.ndarray, lo: np.ndarray, hi: np.ndarray, gamma: np.ndarray,
    gamma_c: np.ndarray, interpolate: bool, min_count: int, width: int, start: int,
    stop: int, out: np.ndarray, count: np.ndarray, keep: np.ndarray, has_keep: bool,
) -> None:  # fmt: skip
    """Percentiles of pixels ``start:stop`` of ``values`` (T, P) into ``out``/``count``;
    with ``has_keep``, observations where ``keep`` (T, P) is False count as missing.

    ``lo``/``hi``/``gamma``/``gamma_c`` are (nq, T + 1) tables indexed by the count;
    ``gamma_c`` is ``1 - gamma``; without ``interpolate`` the value at ``lo`` is taken as
    it is (exact for infinities too). Each loop over ``p`` is branch-free so LLVM
    vectorises it.
    """
    steps = values.shape[0]
    buf = np.empty((max(steps, 1), width), values.dtype)
    valid = np.empty(width, np.uint16)
    for block in range(start, stop, width):
        w = min(width, stop - block)
        valid[:w] = 0
        # Copy the slab, missing -> sentinel; count validity apart from the sentinel.
        for t in range(steps):
            src = values[t, block : block + w]
            dst = buf[t]
            if has_keep:
                ok = keep[t, block : block + w]
                for p in range(w):
                    x = src[p]
                    missing = (x != x) | ((x == nodata) & has_nodata) | (not ok[p])
                    dst[p] = sentinel if missing else x
                    valid[p] += np.uint16(not missing)
            elif has_nodata:
                for p in range(w):
                    x = src[p]
                    missing = (x != x) | (x == nodata)
                    dst[p] = sentinel if missing else x
                    valid[p] += np.uint16(not missing)
            else:
                for p in range(w):
                    x = src[p]
                    missing = x != x  # NaN; constant False for integers
                    dst[p] = sentinel if missing else x
                    valid[p] += np.uint16(not missing)
        # Sort every column at once: compare-exchange of two rows as elementwise min/max.
        for c in range(network.shape[0]):
            a = buf[network[c, 0]]
            b = buf[network[c, 1]]
            for p in range(w):
                x = a[p]
                y = b[p]
                a[p] = y if y < x else x
                b[p] = x if y < x else y
        count[block : block + w] = valid[:w]
        for k in range(lo.shape[0]):
            lo_k, hi_k, g_k, gc_k = lo[k], hi[k], gamma[k], gamma_c[k]
            dst_out = out[k, block : block + w]
            for p in range(w):
                n = valid[p]
                a_ = np.float64(buf[lo_k[n], p])
                b_ = np.float64(buf[hi_k[n], p])
                g = g_k[n]
                diff = b_ - a_
                # numpy's _lerp; both forms computed, then selected: no branch to mispredict.
                up = a_ + diff * g
                down = b_ - diff * gc_k[n]
                value = (down if g >= 0.5 else up) if interpolate else a_
                dst_out[p] = np.float32(np.nan) if n < min_count else np.float32(value)
