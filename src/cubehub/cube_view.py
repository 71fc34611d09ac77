"""What cubehub reads as a cube: its own, one from stackstac, or one from odc-stac.

A cube is xarray with dims ``time``, ``y``, ``x`` and a CRS that rioxarray reads
(``cube.rio.crs``), either

* an :class:`xarray.Dataset` with one variable per band (what :func:`cubehub.load_cube`
  and ``odc.stac.load`` return), or
* an :class:`xarray.DataArray` with a ``band`` dimension (what ``stackstac.stack``
  returns).

Each band's numbers decode to physical values by the CF rule ``value * scale_factor +
add_offset`` (attributes; default 1 and 0), so integer DNs (cubehub's cubes, ``odc-stac``,
``stackstac(rescale=False)``) and float reflectance (``stackstac``'s default) are read
alike. Missing values: NaN in float bands, and the ``_FillValue`` (or rioxarray's
``nodata``) attribute; an integer band without one uses 0, the nodata of Sentinel-2 and
Landsat DNs and of cubehub's cubes. The band named ``scl`` or ``qa_pixel`` (any case) is
the cloud-mask band, read as Sentinel-2 SCL classes or Landsat QA_PIXEL bits.

:func:`read_cube` gives the :class:`CubeView` the composite step computes on;
:func:`clear_observations` is the cube's own cloud mask; :func:`merge_same_time` merges
time steps with one label (the tiles of one overpass) into one observation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import stackstac
import xarray as xr
from pyproj import CRS

from cubehub.compute.masks import MaskKind, MaskRule, clear_mask_xr, rule_for_kind
from cubehub.errors import InputError

__all__ = [
    "CUBE_DIMS",
    "MASK_KINDS",
    "CubeBand",
    "CubeView",
    "clear_observations",
    "merge_same_time",
    "nodata_of",
    "read_cube",
]

#: The dimensions of every band of a cube, in order.
CUBE_DIMS = ("time", "y", "x")
#: Names of cloud-mask bands (compared in lower case) and how each is read.
MASK_KINDS: dict[str, MaskKind] = {"scl": "scl", "qa_pixel": "qa_pixel"}
#: Missing value of an integer band that declares none.
DEFAULT_INTEGER_NODATA = 0


@dataclass(frozen=True)
class CubeBand:
    """One band of a cube: its raw values and how they decode."""

    name: str
    data: xr.DataArray
    """(time, y, x) as stored: integer DNs or floats."""
    scale: float
    """CF ``scale_factor``: physical value = raw * scale + offset; > 0."""
    offset: float
    """CF ``add_offset``."""
    nodata: float | None
    """The raw value of a missing observation; None for a float band with NaN only."""

    def reflectance(self) -> xr.DataArray:
        """float32 physical values, NaN where missing (lazy)."""
        raw = self.data
        if np.issubdtype(raw.dtype, np.integer):
            value = raw.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)
        else:
            value = (raw * self.scale + self.offset).astype(np.float32)
        return value.where(raw != self.nodata) if self.nodata is not None else value


@dataclass(frozen=True)
class CubeView:
    """A cube as the composite step reads it (see :func:`read_cube`)."""

    bands: Mapping[str, CubeBand]
    """Data bands by name, in the cube's order (the mask band is not one)."""
    mask: xr.DataArray | None
    """(time, y, x) cloud-mask band, or None if the cube has none."""
    mask_kind: MaskKind | None
    crs: CRS
    resolution: float
    """Pixel size in CRS units (x)."""

    @property
    def time(self) -> xr.DataArray:
        return next(iter(self.bands.values())).data["time"]

    def clear(self, rule: MaskRule | None = None) -> xr.DataArray:
        """(time, y, x) True where an observation is clear by the mask band (``rule``:
        default the mask kind's own, without buffers)."""
        if self.mask is None or self.mask_kind is None:
            raise InputError(
                "the cube has no cloud-mask band (a variable or band named scl or qa_pixel): "
                "load it with the bands (stackstac/odc-stac: add the 'scl' asset), give "
                "clear= a (time, y, x) boolean mask, or clear=False to keep every valid "
                "observation unmasked"
            )
        own = rule_for_kind(self.mask_kind)
        rule = rule or own
        if not isinstance(rule, type(own)):
            raise InputError(
                f"a {type(rule).__name__} cannot read the cube's {self.mask_kind} band; use a "
                f"{type(own).__name__} (SclMaskRule for Sentinel-2 SCL classes, "
                "QaPixelMaskRule for Landsat QA_PIXEL bits)"
            )
        if (rule.dilate_cloud_m or rule.dilate_shadow_m) and not self.crs.is_projected:
            raise InputError(
                f"mask buffers are in metres, but the cube's CRS ({self.crs.name}) is not "
                "projected; load the cube in a projected CRS (e.g. its UTM zone)"
            )
        return clear_mask_xr(self.mask, rule, self.resolution)


def nodata_of(var: xr.DataArray) -> float | None:
    """The missing value a variable declares (``_FillValue``, ``nodata``), else the default:
    0 for integers, None (NaN only) for floats."""
    for key in ("_FillValue", "nodata", "missing_value"):
        value = var.attrs.get(key, var.encoding.get(key))
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            return float(value)
    return float(DEFAULT_INTEGER_NODATA) if np.issubdtype(var.dtype, np.integer) else None


def _as_dataset(cube: xr.Dataset | xr.DataArray) -> tuple[xr.Dataset, CRS | None]:
    """The cube as one variable per band, and its CRS (read before a DataArray is split)."""
    if isinstance(cube, xr.Dataset):
        crs = cube.rio.crs
        return cube, CRS.from_user_input(crs) if crs is not None else None
    if not isinstance(cube, xr.DataArray):
        raise InputError(
            f"a cube is an xarray Dataset of bands (cubehub.load_cube, odc.stac.load) or a "
            f"DataArray with a band dimension (stackstac.stack); got {type(cube).__name__}"
        )
    if "band" not in cube.dims:
        raise InputError(
            f"a DataArray cube needs a 'band' dimension (as stackstac.stack makes), got dims "
            f"{cube.dims}; or pass a Dataset with one variable per band"
        )
    crs = cube.rio.crs
    # Per-band coordinates (stackstac's asset metadata) do not carry over to variables.
    plain = cube.drop_vars([n for n, c in cube.coords.items() if "band" in c.dims and n != "band"])
    attrs = {k: v for k, v in cube.attrs.items() if k not in ("spec", "transform")}
    bands = {str(b): plain.sel(band=b, drop=True).assign_attrs(attrs) for b in plain.band.values}
    return xr.Dataset(bands), CRS.from_user_input(crs) if crs is not None else None


def read_cube(cube: xr.Dataset | xr.DataArray) -> CubeView:
    """The bands, mask, encoding and CRS of ``cube``; checks run on metadata only.

    Raises:
        InputError: not a cube (dims, CRS, encoding), naming what to change.
    """
    ds, crs = _as_dataset(cube)
    if crs is None:
        raise InputError(
            "the cube has no CRS: write one with cube.rio.write_crs(...) (cubehub, stackstac "
            "and odc-stac cubes carry theirs)"
        )
    bands: dict[str, CubeBand] = {}
    mask: xr.DataArray | None = None
    mask_kind: MaskKind | None = None
    for name, var in ds.data_vars.items():
        if set(var.dims) != set(CUBE_DIMS):
            raise InputError(
                f"band {name} has dims {var.dims}; every band of a cube has dims {CUBE_DIMS}"
            )
        var = var.transpose(*CUBE_DIMS)
        kind = MASK_KINDS.get(str(name).lower())
        if kind is not None and mask is None:
            mask, mask_kind = var, kind
            continue
        scale = float(var.attrs.get("scale_factor", 1.0))
        offset = float(var.attrs.get("add_offset", 0.0))
        if not scale > 0:
            raise InputError(
                f"band {name} has scale_factor {scale}; a composite needs a positive scale "
                "(its percentiles would swap order)"
            )
        bands[str(name)] = CubeBand(str(name), var, scale, offset, nodata_of(var))
    if not bands:
        raise InputError(
            f"the cube has no data band besides its mask (variables: {list(ds.data_vars)})"
        )
    if ds.indexes["time"].has_duplicates:
        # A foreign cube may hold the tiles of one overpass as steps with one label.
        merged = merge_same_time(ds)
        return read_cube(merged.rio.write_crs(crs))
    x = ds["x"].values
    resolution = abs(float(x[1] - x[0])) if x.size > 1 else abs(ds.rio.resolution()[0])
    return CubeView(bands, mask, mask_kind, crs, resolution)


def clear_observations(
    cube: xr.Dataset | xr.DataArray, rule: MaskRule | None = None
) -> xr.DataArray:
    """(time, y, x) True where an observation of ``cube`` is clear, by its mask band; lazy.

    Args:
        cube: a cube (see the module doc) with an ``scl`` or ``qa_pixel`` band.
        rule: a :class:`~cubehub.compute.masks.SclMaskRule` or
            :class:`~cubehub.compute.masks.QaPixelMaskRule`; default: the mask kind's
            default rule, without buffers.

    Example:
        >>> clear = clear_observations(cube)  # doctest: +SKIP
        >>> clear.mean("time").plot()  # doctest: +SKIP
    """
    return read_cube(cube).clear(rule)


def merge_same_time(ds: xr.Dataset) -> xr.Dataset:
    """Time steps with the same label merged into one, the first valid value of each pixel
    winning (``stackstac.mosaic``); each variable by its own missing value."""
    merged: dict[Any, xr.DataArray] = {}
    for name, var in ds.data_vars.items():
        nodata = nodata_of(var)
        merged[name] = (
            var.groupby("time")
            .map(stackstac.mosaic, nodata=np.nan if nodata is None else nodata)
            .assign_attrs(var.attrs)
        )
    return xr.Dataset(merged, attrs=ds.attrs)
