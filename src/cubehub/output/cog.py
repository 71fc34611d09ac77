"""Cloud Optimized GeoTIFFs from lazy 2-D layers, window by window, in bounded memory.

GDAL's COG driver can only copy a whole dataset (``CreateCopy``); rasterio's writer for it
buffers the whole layer in memory and copies it when closed (a 8192² uint16 layer: 264 MiB
peak, see ``benchmarks/bench_export.py``). So each layer is written in two steps:

1. window by window (``window`` px a side, default 2048: 8 MiB of uint16) into a tiled,
   ZSTD-1-compressed GeoTIFF beside the target (``.<name>.stage.tif``), reading each window
   once for every layer that shares its chunks (p25/p50/p75 of a season come from the same
   Zarr chunks);
2. the COG driver copies it (``.<name>.part.tif``; GDAL reads it block by block and builds
   the overviews in a temporary file), and the copy is renamed to its name. A COG is under
   its name complete or not at all; an interrupted export leaves only dot-files, removed on
   the way out.

COGs: DEFLATE with the horizontal predictor (lossless: the stored integers are the store's
digital numbers exactly), ``blocksize`` px internal tiles (default 512), overviews down to
one tile (``AVERAGE`` for values, ``NEAREST`` for counts and codes, nodata excluded), and the
nodata value, scale, offset, unit and description of the layer, plus its tags.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import rasterio.shutil
from dask.base import compute
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.windows import Window

from cubehub.errors import InputError

__all__ = [
    "CACHE_MB",
    "DEFAULT_BLOCKSIZE",
    "DEFAULT_WINDOW",
    "CogLayer",
    "check_blocksize",
    "windows",
    "write_cogs",
]

DEFAULT_BLOCKSIZE = 512
DEFAULT_WINDOW = 2048
#: Compression of the staging files: fast (they are read once); the COG's own is DEFLATE,
#: which every GDAL and QGIS reads.
_STAGE_OPTIONS = {"compress": "ZSTD", "zstd_level": 1, "bigtiff": "IF_SAFER"}
#: GDAL's block cache while writing, MB. GDAL's default is 5 % of the machine's memory,
#: which the staging files' dirty blocks fill whatever the window: bounded here, memory
#: stays flat as layers grow (benchmarks/bench_export.py).
CACHE_MB = 128


@dataclass(frozen=True)
class CogLayer:
    """One COG to write and what it says about itself."""

    path: Path
    """Where the COG goes (its folder exists)."""
    nodata: float
    """The stored value of pixels without data (the store's ``_FillValue``)."""
    scale: float = 1.0
    """Decoded value = stored value x ``scale`` + ``offset`` (GDAL's scale/offset)."""
    offset: float = 0.0
    unit: str = ""
    """Unit of the decoded values (``"1"``: dimensionless)."""
    description: str = ""
    """The band's description (GDAL's band description)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Dataset tags (GDAL metadata of the default domain)."""
    resampling: Literal["average", "nearest"] = "average"
    """Of the overviews: ``average`` for values, ``nearest`` for counts and codes."""


def check_blocksize(blocksize: int) -> None:
    """Raise :class:`InputError` unless ``blocksize`` can be a COG's tile edge: 128..4096 px
    (GDAL's COG driver), a multiple of 16 (as TIFF tiles must be)."""
    if not 128 <= blocksize <= 4096 or blocksize % 16:
        raise InputError(
            f"blocksize {blocksize} is not a multiple of 16 between 128 and 4096; the default, "
            f"{DEFAULT_BLOCKSIZE}, suits most readers"
        )


def windows(rows: int, cols: int, size: int) -> Iterator[tuple[slice, slice]]:
    """(rows, columns) slices of ``size`` px a side covering the grid, row by row."""
    for y0 in range(0, rows, size):
        for x0 in range(0, cols, size):
            yield slice(y0, min(y0 + size, rows)), slice(x0, min(x0 + size, cols))


def write_cogs(
    layers: Sequence[CogLayer],
    arrays: Sequence[Any],
    *,
    crs: CRS,
    transform: Affine,
    blocksize: int = DEFAULT_BLOCKSIZE,
    window: int = DEFAULT_WINDOW,
    on_window: Callable[[], None] | None = None,
) -> int:
    """Write ``arrays[i]`` (2-D, lazy dask or numpy, integer) as the COG ``layers[i]``.

    The arrays share a shape; each window of all of them is computed at once (threads), so
    chunks they share are read once. ``on_window`` is called after each window and after
    each copy (progress). Returns the bytes of the COGs written.
    """
    check_blocksize(blocksize)
    if len(layers) != len(arrays):
        raise InputError(f"{len(layers)} layers but {len(arrays)} arrays")
    rows, cols = arrays[0].shape
    # No tile much larger than the image: a 64 px layer in 128 px tiles (GDAL's least).
    blocksize = min(blocksize, max(128, -(-max(rows, cols) // 16) * 16))
    stages = [_dot_file(layer.path, "stage") for layer in layers]
    parts = [_dot_file(layer.path, "part") for layer in layers]
    try:
        with ExitStack() as stack:
            stack.enter_context(rasterio.Env(GDAL_CACHEMAX=CACHE_MB))
            sinks = [
                stack.enter_context(
                    _open_stage(
                        stage, layer, np.dtype(a.dtype), rows, cols, crs, transform, blocksize
                    )
                )
                for stage, layer, a in zip(stages, layers, arrays, strict=True)
            ]
            for ys, xs in windows(rows, cols, window):
                blocks = compute(*[a[ys, xs] for a in arrays], scheduler="threads")
                box = Window(xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start)
                for sink, block in zip(sinks, blocks, strict=True):
                    sink.write(np.asarray(block), 1, window=box)
                if on_window:
                    on_window()
        written = 0
        for layer, stage, part in zip(layers, stages, parts, strict=True):
            with rasterio.Env(GDAL_CACHEMAX=CACHE_MB):
                _copy_as_cog(stage, part, layer, blocksize)
            os.replace(part, layer.path)
            stage.unlink()
            written += layer.path.stat().st_size
            if on_window:
                on_window()
        return written
    finally:
        for leftover in (*stages, *parts):
            leftover.unlink(missing_ok=True)


def _copy_as_cog(stage: Path, part: Path, layer: CogLayer, blocksize: int) -> None:
    rasterio.shutil.copy(
        stage,
        part,
        driver="COG",
        compress="DEFLATE",
        predictor="YES",
        blocksize=blocksize,
        overviews="AUTO",
        overview_resampling=layer.resampling.upper(),
        bigtiff="IF_SAFER",
        num_threads="ALL_CPUS",
    )


def _dot_file(path: Path, what: str) -> Path:
    return path.with_name(f".{path.name}.{what}.tif")


def _open_stage(
    path: Path,
    layer: CogLayer,
    dtype: np.dtype[Any],
    rows: int,
    cols: int,
    crs: CRS,
    transform: Affine,
    blocksize: int,
) -> Any:
    sink = rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=cols,
        height=rows,
        count=1,
        dtype=dtype,
        crs=crs,
        transform=transform,
        nodata=layer.nodata,
        tiled=True,
        blockxsize=blocksize,
        blockysize=blocksize,
        **_STAGE_OPTIONS,
    )
    sink.scales = (layer.scale,)
    sink.offsets = (layer.offset,)
    sink.units = (layer.unit,)
    sink.set_band_description(1, layer.description)
    sink.update_tags(**{k: str(v) for k, v in layer.tags.items()})
    return sink
