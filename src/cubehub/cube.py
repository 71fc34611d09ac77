"""Normalised STAC items -> a lazy, chunked ``xarray`` cube on an explicit output grid.

The only module that calls the pixel loader (stackstac). Pixels stay in their native
integer dtype with nodata 0 (a quarter of stackstac's float64 default). Each band's DNs are
brought to one encoding across items — e.g. Sentinel-2 scenes before processing baseline
04.00 get +1000 so that every scene reads ``reflectance = DN * 1e-4 - 0.1`` — so the
percentile can run on integers and scale once at the end.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pystac
import stackstac
import xarray as xr
from pyproj import CRS, Transformer

from cubehub import config
from cubehub.compute.masks import MaskRule, clear_mask_xr, rule_for_kind
from cubehub.errors import DataError, InputError
from cubehub.items import NormalizedItems, normalize_items
from cubehub.reader import OnError, SasTokenSigner, reader_for

#: Value of a missing observation in every integer band (also Sentinel-2's and Landsat's).
NODATA = 0
#: Largest number of output pixels a cube may have unless the caller raises the limit.
MAX_PIXELS_DEFAULT = 4_000_000_000


@dataclass(frozen=True)
class OutputGrid:
    """The pixel grid of a cube and of its composites.

    Attributes:
        epsg: EPSG code of the output CRS, e.g. 32633 (UTM 33N) or 3035 (LAEA Europe).
        resolution: pixel size in CRS units (metres for projected CRSs).
        bounds: (xmin, ymin, xmax, ymax) in the output CRS, multiples of ``resolution``.
    """

    epsg: int
    resolution: float
    bounds: tuple[float, float, float, float]

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        xmin, ymin, xmax, ymax = self.bounds
        return round((ymax - ymin) / self.resolution), round((xmax - xmin) / self.resolution)


def grid_for_bbox(
    bbox_lonlat: Sequence[float],
    epsg: int,
    resolution: float,
    *,
    max_pixels: int = MAX_PIXELS_DEFAULT,
) -> OutputGrid:
    """The output grid covering a lon/lat box, its bounds snapped outward to the pixel grid.

    Args:
        bbox_lonlat: (west, south, east, north) in degrees.
        epsg: output CRS.
        resolution: pixel size in CRS units; must be > 0.
        max_pixels: refuse grids with more pixels than this (default 4e9), since such a
            job is almost always a unit mistake (degrees vs metres).
    """
    if not resolution > 0:
        raise InputError(f"resolution must be a positive number of CRS units, got {resolution}")
    try:
        crs = CRS.from_epsg(epsg)
    except Exception:
        raise InputError(f"EPSG:{epsg} is not a CRS pyproj knows; check the code") from None
    transformer = Transformer.from_crs(4326, crs, always_xy=True)
    west, south, east, north = bbox_lonlat
    xs, ys = transformer.transform(
        np.array([west, east, west, east, (west + east) / 2, (west + east) / 2]),
        np.array([south, south, north, north, south, north]),
    )
    res = float(resolution)
    bounds = (
        math.floor(min(xs) / res) * res,
        math.floor(min(ys) / res) * res,
        math.ceil(max(xs) / res) * res,
        math.ceil(max(ys) / res) * res,
    )
    grid = OutputGrid(epsg, res, bounds)
    rows, cols = grid.shape
    if rows * cols > max_pixels:
        raise InputError(
            f"the output grid would be {rows} x {cols} pixels ({rows * cols:.3g}), above the "
            f"limit of {max_pixels:.3g}; use a coarser resolution (now {res} CRS units), a "
            "smaller area, or raise max_pixels"
        )
    return grid


@dataclass(frozen=True)
class CubeBudget:
    """What a cube will cost to read, known before any pixel is read.

    Attributes:
        items: STAC items stacked.
        time_steps: observations after merging same-day items.
        tasks: tasks in the cube's dask graph (bands and mask).
        bytes_decoded: bytes of decoded pixels on the output grid, bands and mask (uint16).
    """

    items: int
    time_steps: int
    tasks: int
    bytes_decoded: int


@dataclass(frozen=True)
class Cube:
    """A lazy cube of harmonised DNs plus its mask band.

    Attributes:
        data: (time, band, y, x) uint16 DNs, :data:`NODATA` where missing; every time step
            of a band shares one encoding, ``reflectance = DN * scale[band] + offset[band]``.
        mask: (time, y, x) the raw mask band (Sentinel-2 SCL classes, Landsat QA_PIXEL bits).
        mask_kind: ``"scl"`` or ``"qa_pixel"``.
        scale, offset: per band, the encoding of ``data``.
        grid: the output grid.
    """

    data: xr.DataArray
    mask: xr.DataArray
    mask_kind: str
    scale: dict[str, float]
    offset: dict[str, float]
    grid: OutputGrid

    @property
    def item_ids(self) -> list[str]:
        return [str(v) for v in np.atleast_1d(self.data.coords["id"].values)]

    def budget(self) -> CubeBudget:
        """What reading this cube takes, from metadata only."""
        rows, cols = self.grid.shape
        steps = self.data.sizes["time"]
        layers = self.data.sizes["band"] + 1  # + the mask band
        return CubeBudget(
            items=len(self.item_ids),
            time_steps=steps,
            tasks=len(xr.merge([self.data.rename("data"), self.mask.rename("mask")]).__dask_graph__()),
            bytes_decoded=steps * layers * rows * cols * np.dtype(np.uint16).itemsize,
        )

    def clear(self, rule: MaskRule | None = None) -> xr.DataArray:
        """(time, y, x) True where an observation is clear, by the collection's mask band.

        Args:
            rule: an :class:`~cubehub.compute.masks.SclMaskRule` or
                :class:`~cubehub.compute.masks.QaPixelMaskRule`; default: the default rule
                of the mask kind, without buffers.
        """
        return clear_mask_xr(self.mask, rule or rule_for_kind(self.mask_kind), self.grid.resolution)


def load_cube(
    items: NormalizedItems | Sequence[pystac.Item],
    bands: Sequence[str],
    grid: OutputGrid | None = None,
    *,
    bbox: Sequence[float] | None = None,
    epsg: int | None = None,
    resolution: float | None = None,
    chunk_size: int | None = None,
    on_read_error: OnError = "fail",
    signer: SasTokenSigner | None = None,
) -> Cube:
    """Stack items into a lazy cube of harmonised DNs and the cloud-mask band; reads no pixels.

    Args:
        items: found items (normalised here, see :func:`cubehub.items.normalize_items`) or
            the result of :func:`~cubehub.items.normalize_items`.
        bands: reflectance bands by common name, e.g. ``["red", "nir"]``; the collection's
            mask band (``scl`` or ``qa_pixel``) is loaded as well.
        grid: output grid; default: ``bbox`` (degrees) in ``epsg`` (default: the items' most
            common CRS) at ``resolution`` (default: the collection's native, 10 m for
            Sentinel-2), snapped to the pixel grid.
        chunk_size: spatial chunk edge in pixels (default: setting
            ``cubehub.composite.chunk_size``, 512). Time chunks are one scene each; the
            composite step gathers a season into one chunk.
        on_read_error: ``"fail"`` (default): an asset that cannot be read after GDAL's
            retries stops the job, naming its href; ``"missing"``: its pixels become nodata
            and it is reported (see :func:`cubehub.reader.missing_assets`).
        signer: signs hrefs at read time; default: Planetary Computer's SAS tokens for
            Planetary Computer items, none otherwise.

    Example:
        >>> cube = load_cube(items, ["red", "nir"], bbox=(15.6, 47.0, 15.7, 47.1))  # doctest: +SKIP
    """
    normalised = items if isinstance(items, NormalizedItems) else normalize_items(items, bands=bands)
    if not normalised.items:
        raise InputError("no items to stack")
    bands = normalised.profile.check_bands(bands)
    if grid is None:
        if bbox is None:
            raise InputError("give the output grid, or a bbox (west, south, east, north in degrees)")
        codes = Counter(int(i.properties["proj:epsg"]) for i in normalised.items)
        grid = grid_for_bbox(
            bbox, epsg or codes.most_common(1)[0][0], resolution or normalised.profile.resolution_m
        )
    chunk = int(config.get("composite.chunk_size", chunk_size))
    mask_band = normalised.profile.mask.name
    stack_items = list(normalised.items)
    scale, offset, shifts = _harmonisation(stack_items, bands)
    if signer is None and normalised.profile.provider == "planetary-computer":
        signer = SasTokenSigner()
    gdal_env = stackstac.DEFAULT_GDAL_ENV.updated(always=config.gdal_env())
    stack = stackstac.stack(
        stack_items,
        assets=[*bands, mask_band],
        epsg=grid.epsg,
        resolution=grid.resolution,
        bounds=grid.bounds,
        snap_bounds=False,
        chunksize=(1, 1, chunk, chunk),
        dtype=np.dtype("uint16"),
        fill_value=np.uint16(NODATA),  # a numpy scalar: stackstac checks can_cast(type(fill))
        rescale=False,
        xy_coords="center",
        properties=False,
        band_coords=False,
        gdal_env=gdal_env,
        errors_as_nodata=(),  # the reader applies cubehub's policy instead
        reader=reader_for(signer=signer, on_error=on_read_error),
    )
    data = stack.sel(band=list(bands))
    # stackstac leaves out items that miss the bounds: look the shifts up by item id.
    row_of = {item.id: k for k, item in enumerate(stack_items)}
    shifts = shifts[[row_of[str(i)] for i in np.atleast_1d(stack.id.values)]]
    if shifts.any():
        shift = xr.DataArray(shifts, dims=("time", "band"), coords={"time": data.time, "band": data.band})
        raised = np.minimum(data.astype(np.uint32) + shift, np.iinfo(np.uint16).max).astype(np.uint16)
        data = raised.where(data != NODATA, NODATA)
    data.attrs = {"nodata": NODATA}
    mask = stack.sel(band=mask_band, drop=True)
    if data.indexes["time"].has_duplicates:
        # Same solar day from adjacent tiles: one observation, first valid pixel wins.
        data = data.groupby("time").map(stackstac.mosaic, nodata=NODATA)
        mask = mask.groupby("time").map(stackstac.mosaic, nodata=NODATA)
    return Cube(data=data, mask=mask, mask_kind=normalised.profile.mask_kind, scale=scale, offset=offset, grid=grid)


def _harmonisation(
    items: Sequence[pystac.Item], bands: Sequence[str]
) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
    """Per band, one (scale, offset) encoding for all items, and each item's DN shift into it.

    The common offset is each band's lowest offset (e.g. -0.1 for Sentinel-2), so the
    shifts are non-negative and the DNs stay unsigned.
    """
    table = np.zeros((len(items), len(bands), 2))
    for i, item in enumerate(items):
        for j, band in enumerate(bands):
            rb = (item.assets[band].extra_fields.get("raster:bands") or [{}])[0]
            table[i, j] = rb.get("scale", 1.0), rb.get("offset", 0.0)
    scale: dict[str, float] = {}
    offset: dict[str, float] = {}
    shifts = np.zeros((len(items), len(bands)), dtype=np.uint16)
    for j, band in enumerate(bands):
        scales = np.unique(table[:, j, 0])
        if len(scales) > 1:
            raise DataError(
                f"band {band} has different scales across items ({', '.join(map(str, scales))}); "
                "stack one collection or sensor at a time"
            )
        common = float(table[:, j, 1].min())
        steps = (table[:, j, 1] - common) / scales[0]
        if not np.allclose(steps, np.round(steps), atol=1e-6):
            raise DataError(f"band {band}: offsets differ by a non-integer number of DNs; cannot harmonise")
        scale[band], offset[band] = float(scales[0]), common
        shifts[:, j] = np.round(steps).astype(np.uint16)
    return scale, offset, shifts
