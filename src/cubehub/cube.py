"""Normalised STAC items -> a lazy, chunked ``xarray`` cube on an explicit output grid.

With :mod:`cubehub.cube_view`, the only module that calls the pixel loader (stackstac).
Pixels stay in their native integer dtype with nodata 0 (a quarter of stackstac's float64
default). Each band's DNs are brought to one encoding across items — e.g. Sentinel-2 scenes
before processing baseline 04.00 get +1000 so that every scene reads ``reflectance = DN *
1e-4 - 0.1`` — so the percentile can run on integers and scale once at the end. The cube
says so the CF way: ``scale_factor``, ``add_offset`` and ``_FillValue`` attributes on each
band, and its CRS as a ``spatial_ref`` coordinate (``cube.rio.crs``), so ``xr.decode_cf``
gives reflectance and any xarray tool reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pystac
import rioxarray  # noqa: F401  (registers the .rio accessor)
import stackstac
import xarray as xr
from rasterio.transform import Affine

from cubehub import config
from cubehub.catalog.items import NormalizedItems, asset_transforms, normalize_items
from cubehub.compute.harmonize import check_harmonisation, harmonize_dn, is_harmonised_platform
from cubehub.compute.masks import QA_PIXEL_BITS, SCL_CLASSES, MaskKind
from cubehub.cube_view import merge_same_time
from cubehub.errors import DataError, InputError
from cubehub.grid import (
    AnchorOption,
    CrsLike,
    OutputGrid,
    chunks_on_phase,
    epsg_code,
    grid_for_bbox,
    scene_pixel_phase,
)
from cubehub.reader import OnError, SasTokenSigner, is_blob_href, reader_for

__all__ = ["NODATA", "CubeBudget", "cube_budget", "cube_grid", "gdal_env", "load_cube"]

#: Value of a missing observation in every integer band (also Sentinel-2's and Landsat's).
NODATA = 0


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


def cube_budget(cube: xr.Dataset) -> CubeBudget:
    """What reading a cube from :func:`load_cube` takes, from metadata only."""
    steps, rows, cols = (cube.sizes[d] for d in ("time", "y", "x"))
    return CubeBudget(
        items=len(np.unique(np.concatenate([str(i).split(",") for i in cube["id"].values]))),
        time_steps=steps,
        tasks=len(cube.__dask_graph__()),
        bytes_decoded=steps * len(cube.data_vars) * rows * cols * np.dtype(np.uint16).itemsize,
    )


def cube_grid(cube: xr.Dataset | xr.DataArray) -> OutputGrid:
    """The :class:`~cubehub.grid.OutputGrid` of a cube or composite: its CRS and pixel edges."""
    crs = cube.rio.crs
    if crs is None or crs.to_epsg() is None:
        raise InputError("the cube has no EPSG CRS; write one with cube.rio.write_crs(epsg)")
    xmin, ymin, xmax, ymax = cube.rio.bounds()
    return OutputGrid(int(crs.to_epsg()), abs(cube.rio.resolution()[0]), (xmin, ymin, xmax, ymax))


def gdal_env() -> stackstac.rio_env.LayeredEnv:
    """stackstac's GDAL environment with the ``cubehub.gdal`` settings on every layer.

    stackstac sets options of its own in the layers it enters to open and to read a file
    (e.g. ``GDAL_DISABLE_READDIR_ON_OPEN``, ``VSI_CACHE``), and those override the ``always``
    layer: the settings go into each layer, so what a user sets is what GDAL gets.
    """
    settings = config.gdal_env()
    return stackstac.DEFAULT_GDAL_ENV.updated(
        always=settings, open=settings, open_vrt=settings, read=settings
    )


def load_cube(
    items: NormalizedItems | Sequence[pystac.Item | dict[str, Any]],
    bands: str | Sequence[str],
    grid: OutputGrid | None = None,
    *,
    bbox: Sequence[float] | None = None,
    epsg: CrsLike | None = None,
    resolution: float | None = None,
    anchor: AnchorOption = "auto",
    chunk_size: int | None = None,
    on_read_error: OnError = "fail",
    signer: SasTokenSigner | None = None,
    read_tag: str = "",
    harmonize: str | None = None,
) -> xr.Dataset:
    """Stack items into a lazy cube of harmonised DNs and the cloud-mask band; reads no pixels.

    Args:
        items: found items (normalised here, see :func:`cubehub.catalog.items.normalize_items`) or
            the result of :func:`~cubehub.catalog.items.normalize_items`.
        bands: reflectance bands by common name, e.g. ``["red", "nir"]`` (one may be a
            string); the collection's mask band (``scl`` or ``qa_pixel``) is loaded as well.
        grid: output grid; default: ``bbox`` (degrees) in ``epsg`` (default: the items' most
            common CRS; 3035, ``"EPSG:3035"`` or a pyproj CRS) at ``resolution`` (default:
            the collection's native, 10 m for Sentinel-2), snapped outward to the pixel grid
            of ``anchor``.
        anchor: where that grid's pixel edges lie (see :mod:`cubehub.grid`): ``"auto"``
            (default: the items' own pixel grid where ``epsg`` and ``resolution`` are
            theirs, so nothing is resampled, e.g. Landsat's edges at 15 m mod 30 m;
            ``"edge"`` otherwise), ``"edge"`` (multiples of the resolution), ``"center"``
            or a pixel corner ``(x, y)`` in CRS units. Unused with an explicit ``grid``.
        chunk_size: spatial chunk edge in pixels (default: setting
            ``cubehub.composite.chunk_size``, 512). Time chunks are one scene each; the
            composite step gathers a season in each of its tasks. One read task reads
            every band and the mask of a scene for a chunk; where files are read natively,
            read chunks lie on the files' own tiles and the cube is then rechunked to
            regular chunks from its corner (a copy, not a second decode).
        on_read_error: ``"fail"`` (default): an asset that cannot be read after GDAL's
            retries stops the job, naming its href; ``"missing"``: its pixels become nodata
            and it is reported (see :func:`cubehub.reader.missing_assets`).
        signer: signs hrefs at read time; default: Planetary Computer's SAS tokens for
            items whose files are on Azure Blob storage, none otherwise.
        read_tag: label of this cube's missing-asset reports, to tell them from other
            cubes' (``missing_assets(client, tag=...)``); default none.
        harmonize: ``"roy2016"``: the reflectance of every Landsat TM/ETM+ item (platform
            ``landsat-4/5/7``) moved to OLI's, per observation (see
            :mod:`cubehub.compute.harmonize`); default None, the DNs as the files hold them.

    Files whose CRS, pixel size and edges are the grid's are read natively, without
    warping (setting ``cubehub.read.native``, default true; see :mod:`cubehub.reader`).

    Returns:
        A Dataset with one ``uint16`` variable (time, y, x) per band, DNs with CF
        ``scale_factor``/``add_offset`` (reflectance = DN * scale_factor + add_offset; for
        thermal bands kelvin), ``_FillValue`` 0, ``units`` and ``long_name`` from the
        collection profile (``"1"``, ``"red surface reflectance"``; ``"K"``, ``"lwir11
        surface temperature"``); the mask band (``scl`` or ``qa_pixel``) with CF flag attributes;
        coordinates ``time``, ``y``, ``x`` (pixel centres), ``id`` (the item(s) of each time
        step) and the CRS as ``spatial_ref`` (``cube.rio.crs``). Same-day items of adjacent
        tiles are merged into one time step.

    Example:
        >>> cube = load_cube(items, ["red", "nir"], bbox=(15.6, 47.0, 15.7, 47.1))  # doctest: +SKIP
        >>> xr.decode_cf(cube)["nir"].isel(time=0).plot()  # reflectance  # doctest: +SKIP
    """
    bands = [bands] if isinstance(bands, str) else list(bands)
    normalised = (
        items if isinstance(items, NormalizedItems) else normalize_items(items, bands=bands)
    )
    if not normalised.items:
        raise InputError("no items to stack")
    bands = normalised.profile.check_bands(bands)
    check_harmonisation(harmonize)
    if harmonize is not None and normalised.profile.sensor != "landsat":
        raise InputError(
            f"harmonize={harmonize!r} moves Landsat TM/ETM+ reflectance to OLI's; "
            f"{normalised.profile.name} is {normalised.profile.sensor}: leave harmonize out"
        )
    if grid is None:
        if bbox is None:
            raise InputError(
                "give the output grid, or a bbox (west, south, east, north in degrees)"
            )
        code = epsg_code(epsg) if epsg is not None else normalised.common_epsg()
        res = resolution or normalised.profile.resolution_m
        grid = grid_for_bbox(bbox, code, res, anchor=normalised.output_anchor(anchor, code, res))
    chunk = int(config.get("composite.chunk_size", chunk_size))
    mask_band = normalised.profile.mask.name
    stack_items = _items_meeting(normalised, grid)
    scale, offset, shifts = _harmonisation(stack_items, bands)
    if signer is None and any(is_blob_href(a.href) for i in stack_items for a in i.assets.values()):
        signer = SasTokenSigner()  # Planetary Computer's files; items on other storage need none
    native = bool(config.get("read.native"))
    read_chunks = _read_chunks(stack_items, grid, chunk, len(bands) + 1, native)
    stack = stackstac.stack(
        stack_items,
        assets=[*bands, mask_band],
        epsg=grid.epsg,
        resolution=grid.resolution,
        bounds=grid.bounds,
        snap_bounds=False,
        chunksize=read_chunks,
        dtype=np.dtype("uint16"),
        fill_value=np.uint16(NODATA),  # a numpy scalar: stackstac checks can_cast(type(fill))
        rescale=False,
        xy_coords="center",
        properties=False,
        band_coords=False,
        gdal_env=gdal_env(),
        errors_as_nodata=(),  # the reader applies cubehub's policy instead
        reader=reader_for(
            signer=signer,
            on_error=on_read_error,
            tag=read_tag,
            native=native,
        ),
    )
    if stack.chunks[2:] != _regular(grid, chunk):
        # Read on the files' tiles, then on regular chunks for the rest of the graph (and
        # the store's chunks): a copy of the pixels, not a second decode.
        stack = stack.chunk({"y": chunk, "x": chunk})
    # stackstac's CRS, transform and spec attributes: the CRS goes into spatial_ref instead.
    stack = stack.drop_vars("epsg")
    stack.attrs.clear()
    # stackstac leaves out items that miss the bounds: look the shifts up by item id.
    row_of = {item.id: k for k, item in enumerate(stack_items)}
    rows = [row_of[str(i)] for i in np.atleast_1d(stack.id.values)]
    shifts = shifts[rows]
    older = _older_sensor(stack_items)[rows] if harmonize is not None else None
    variables: dict[str, xr.DataArray] = {}
    for j, band in enumerate(bands):
        dn = stack.sel(band=band, drop=True)
        if shifts[:, j].any():
            shift = xr.DataArray(shifts[:, j], dims="time", coords={"time": dn.time})
            raised = np.minimum(dn.astype(np.uint32) + shift, np.iinfo(np.uint16).max)
            dn = raised.astype(np.uint16).where(dn != NODATA, NODATA)
        if older is not None and older.any():
            dn = _harmonized(dn, band, scale[band], offset[band], older, str(harmonize))
        spec = normalised.profile.band(band)
        variables[band] = dn.assign_attrs(
            scale_factor=scale[band],
            add_offset=offset[band],
            _FillValue=NODATA,
            units=spec.units,
            long_name=spec.long_name,
        )
    variables[mask_band] = stack.sel(band=mask_band, drop=True).assign_attrs(
        _mask_attrs(normalised.profile.mask_kind)
    )
    cube = xr.Dataset(variables)
    if cube.indexes["time"].has_duplicates:
        # Same solar day from adjacent tiles: one observation, first valid pixel wins.
        cube = merge_same_time(cube)
    xmin, _, _, ymax = grid.bounds
    transform = Affine(grid.resolution, 0.0, xmin, 0.0, -grid.resolution, ymax)
    placed: xr.Dataset = (
        cube.rio.write_crs(grid.epsg).rio.write_transform(transform).rio.write_coordinate_system()
    )
    return placed


def _read_chunks(
    items: Sequence[pystac.Item], grid: OutputGrid, chunk: int, assets: int, native: bool
) -> tuple[Any, ...]:
    """stackstac's chunks: one task reads every asset of an item (bands and mask) for a
    spatial chunk, a fifth to a seventh of the tasks of one per asset for the same bytes
    in memory. Where files are read natively, the spatial chunk edges lie on the most
    common scene corner mod ``chunk`` (see :func:`cubehub.grid.scene_pixel_phase`), so
    each of the files' internal tiles (512 px, or any size dividing ``chunk``) is decoded
    once instead of up to four times."""
    phase = scene_pixel_phase(asset_transforms(items, grid.epsg), grid, chunk) if native else None
    if phase is None:
        return (1, assets, chunk, chunk)
    rows, cols = grid.shape
    return (
        1,
        assets,
        chunks_on_phase(rows, chunk, phase[0]),
        chunks_on_phase(cols, chunk, phase[1]),
    )


def _regular(grid: OutputGrid, chunk: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Regular ``chunk`` px chunks of the grid (rows, columns), the last one shorter."""
    rows, cols = grid.shape
    return tuple(  # type: ignore[return-value]  # two axes
        (chunk,) * (n // chunk) + ((n % chunk,) if n % chunk else ()) for n in (rows, cols)
    )


def _items_meeting(normalised: NormalizedItems, grid: OutputGrid) -> list[pystac.Item]:
    """The items whose footprint box meets the grid; :class:`InputError` if none does.

    stackstac drops items outside the bounds itself, but with none left it fails on its
    own metadata ("could not convert string to float").
    """
    west, south, east, north = grid.lonlat_bounds()
    meeting = [
        item
        for item in normalised.items
        if item.bbox is None
        or (
            item.bbox[0] <= east
            and item.bbox[2] >= west
            and item.bbox[1] <= north
            and item.bbox[3] >= south
        )
    ]
    if not meeting:
        boxes = np.array([i.bbox for i in normalised.items], dtype=float)
        covered = (*boxes[:, :2].min(axis=0).round(4), *boxes[:, 2:].max(axis=0).round(4))
        raise InputError(
            f"the output grid ({', '.join(f'{v:.4f}' for v in (west, south, east, north))} in "
            f"lon/lat) meets none of the {len(normalised.items)} items, which cover "
            f"{covered}; choose a bbox inside the items' footprints (west, south, east, north)"
        )
    return meeting


def _older_sensor(items: Sequence[pystac.Item]) -> np.ndarray:
    """Per item, True for Landsat TM/ETM+ by its ``platform``; :class:`DataError` for an
    item without one (every Earth Search, Planetary Computer and USGS item has it)."""
    older = np.zeros(len(items), dtype=bool)
    for k, item in enumerate(items):
        platform = item.properties.get("platform")
        if not platform:
            raise DataError(
                f"item {item.id} names no platform: cannot tell TM/ETM+ from OLI to harmonise; "
                "add its 'platform' property, or leave harmonize out"
            )
        older[k] = is_harmonised_platform(str(platform))
    return older


def _harmonized(
    dn: xr.DataArray, band: str, scale: float, offset: float, older: np.ndarray, name: str
) -> xr.DataArray:
    """``dn`` (time, y, x) with the ``older`` time steps harmonised to OLI, lazily: one
    blockwise layer (the flags ride along as a (time, 1, 1) array)."""
    flags = xr.DataArray(older, dims="time", coords={"time": dn.time})
    out: xr.DataArray = xr.apply_ufunc(
        partial(_harmonize_block, band=band, scale=scale, offset=offset, name=name),
        dn,
        flags,
        dask="parallelized",
        output_dtypes=[dn.dtype],
        keep_attrs=True,
    )
    return out


def _harmonize_block(
    dn: np.ndarray, older: np.ndarray, *, band: str, scale: float, offset: float, name: str
) -> np.ndarray:
    out: np.ndarray = harmonize_dn(dn, band, scale, offset, older=older, name=name, nodata=NODATA)
    return out


def _mask_attrs(kind: MaskKind) -> dict[str, Any]:
    """CF flag attributes of a mask band: SCL classes, or QA_PIXEL bits; 0 where no item is."""

    def words(text: str) -> str:
        return text.replace(" / ", "_or_").replace(" ", "_")

    if kind == "scl":
        attrs: dict[str, Any] = {
            "long_name": "Sentinel-2 scene classification (SCL)",
            "flag_values": list(SCL_CLASSES),
            "flag_meanings": " ".join(words(v) for v in SCL_CLASSES.values()),
        }
    else:
        attrs = {
            "long_name": "Landsat Collection 2 pixel quality (QA_PIXEL)",
            "flag_masks": [1 << bit for bit in QA_PIXEL_BITS],
            "flag_meanings": " ".join(words(v) for v in QA_PIXEL_BITS.values()),
        }
    attrs["nodata"] = NODATA  # stackstac's fill, whatever the files' own nodata
    return attrs


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
            raise DataError(
                f"band {band}: offsets differ by a non-integer number of DNs; cannot harmonise"
            )
        scale[band], offset[band] = float(scales[0]), common
        shifts[:, j] = np.round(steps).astype(np.uint16)
    return scale, offset, shifts
