"""The percentiles of every band of one season, one Dask task per spatial chunk.

A composite of B bands over a season of T observations could be B masking layers over T
time chunks, B time concatenations, B percentile layers and B scaling layers: about
``B * (2 T + 3)`` tasks per spatial chunk, most of them a pass over memory that takes less
time than Dask spends scheduling it. :func:`band_percentiles_dask` is one task per chunk
instead: it gathers the season's time chunks of every band and the mask, runs the
serial kernel of :mod:`cubehub.compute.percentile` band by band with the mask (the
kernel counts a rejected observation as missing while it copies its slab), and scales
the result to physical units in place, giving exactly what those layers give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np

from cubehub.compute.percentile import Method, PercentilePlan, fill_percentiles, plan_percentiles
from cubehub.errors import InputError

__all__ = ["BandEncoding", "band_percentiles_dask"]


@dataclass(frozen=True)
class BandEncoding:
    """How one band's values decode: ``value * scale + offset``, ``nodata`` missing.

    Attributes:
        nodata: the value of a missing observation; None: only NaN is missing (float
            data), or nothing is (integer data without a mask).
        scale: multiplier to physical units (1.0: none).
        offset: added after scaling (0.0: none).
    """

    nodata: int | float | None = None
    scale: float = 1.0
    offset: float = 0.0


def band_percentiles_dask(
    bands: Sequence[da.Array],
    encodings: Sequence[BandEncoding],
    q: Sequence[float],
    *,
    keep: da.Array | None = None,
    method: Method = "linear",
    min_count: int = 1,
) -> tuple[list[da.Array], da.Array]:
    """Percentiles ``q`` over axis 0 of each band, the observations ``keep`` rejects missing.

    Args:
        bands: ``(T, *spatial)`` Dask arrays of one season, of one shape; time may be in
            any number of chunks (each task gathers them), spatial chunks are the first
            band's (others are rechunked to them).
        encodings: per band, its nodata and the scaling to physical units.
        q: percentiles in percent (0..100).
        keep: ``(T, *spatial)`` boolean, True for observations to keep; None keeps every
            valid one. A rejected observation counts as missing, as if it were the band's
            nodata (the kernel skips it; nothing is copied to mask it).
        method, min_count: as :func:`cubehub.compute.percentile.percentiles`.

    Returns:
        ``(values, count)``: per band a float32 ``(len(q), *spatial)`` array in physical
        units (NaN where fewer than ``min_count`` observations), and the uint16 count of
        the first band's valid observations (the mask is shared; each band's nodata is its
        own). All come from the same tasks: compute or store them together.
    """
    if not bands or len(bands) != len(encodings):
        raise InputError(f"give one encoding per band: {len(bands)} band(s), {len(encodings)}")
    shape = bands[0].shape
    for array in [*bands, *([keep] if keep is not None else [])]:
        if array.shape != shape:  # chunks may differ: blockwise unifies them
            raise InputError(f"bands and mask must share one shape: {array.shape}, {shape}")
    plans = [
        plan_percentiles(b.dtype, shape, q, e.nodata, method, min_count)
        for b, e in zip(bands, encodings, strict=True)
    ]
    nq = plans[0].nq
    spatial = tuple(f"s{k}" for k in range(len(shape) - 1))
    inputs = ("t", *spatial)
    args: list[object] = []
    for array in [*bands, *([keep] if keep is not None else [])]:
        args += [array, inputs]
    packed = da.blockwise(
        _season_block,
        ("p", *spatial),
        *args,
        new_axes={"p": len(bands) * nq + 1},
        concatenate=False,
        dtype=np.float32,
        meta=np.empty((0,) * len(shape), np.float32),
        plans=plans,
        encodings=list(encodings),
        masked=keep is not None,
    )
    values = [packed[j * nq : (j + 1) * nq] for j in range(len(bands))]
    return values, packed[len(bands) * nq].astype(np.uint16)


def _season_block(
    *blocks: list[np.ndarray],
    plans: list[PercentilePlan],
    encodings: list[BandEncoding],
    masked: bool,
) -> np.ndarray:
    """One spatial chunk: every band's percentiles and the first band's count, packed as
    (bands * nq + 1, *spatial) float32. ``blocks``: per band (then the mask) its time chunks."""
    keep = _gather(blocks[-1]) if masked else None
    band_blocks = blocks[:-1] if masked else blocks
    first = band_blocks[0][0]
    pixels = math.prod(first.shape[1:])
    nq = plans[0].nq
    packed = np.empty((len(band_blocks) * nq + 1, pixels), np.float32)
    count = np.empty(pixels, np.uint16)
    for j, (parts, plan, enc) in enumerate(zip(band_blocks, plans, encodings, strict=True)):
        out = packed[j * nq : (j + 1) * nq]
        fill_percentiles(_gather(parts), plan, 1, out, count, keep)
        if j == 0:
            packed[-1] = count
        if enc.scale != 1:
            out *= enc.scale
        if enc.offset != 0:
            out += enc.offset
    return packed.reshape(len(packed), *first.shape[1:])


def _gather(parts: list[np.ndarray]) -> np.ndarray:
    """The time chunks of one band (or the mask) as one (T, *spatial) array (read only)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
