"""Cloud masks from the provider's per-pixel quality layer, as data.

Two kinds of quality layer are understood:

* ``"scl"``: the Sentinel-2 L2A Scene Classification Layer, one class per pixel
  (:data:`SCL_CLASSES`), at 20 m native resolution.
* ``"qa_pixel"``: the Landsat Collection 2 Level-2 ``QA_PIXEL`` bit field (bit 0 fill,
  1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow, 6 clear, 7 water), 30 m.

A rule (:class:`SclMaskRule`, :class:`QaPixelMaskRule`) says which pixels are clear
observations and how far to buffer clouds and their shadows, in metres, the way FORCE
does (its defaults: cloud 300 m, shadow 90 m). Buffers matter because the classifiers
miss the thin edges of clouds and shadows, which otherwise leak into every percentile.

:func:`clear_mask` works on NumPy arrays shaped ``(..., y, x)``; :func:`clear_mask_xr`
wraps it for lazy Dask-backed :class:`xarray.DataArray` cubes, overlapping the chunks by
exactly the buffer radius so results do not depend on the chunking.

No data is never clear: SCL class 0, a set QA fill bit, a QA value of 0 (impossible in
real data, and what stackstac writes where an item has no pixels when ``fill_value=0``)
and NaN (a float cube's fill).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Literal, TypeAlias

import dask.array as da
import numpy as np
import numpy.typing as npt
import xarray as xr
from scipy import ndimage

from cubehub.errors import InputError

__all__ = [
    "DEFAULT_QA_REJECT_BITS",
    "DEFAULT_SCL_KEEP",
    "QA_PIXEL_BITS",
    "SCL_CLASSES",
    "MaskKind",
    "MaskRule",
    "QaPixelMaskRule",
    "SclMaskRule",
    "clear_mask",
    "clear_mask_xr",
    "dilation_radius_px",
    "disk",
    "rule_for_kind",
]

#: The kinds of quality layer cubehub understands; a collection profile names one.
MaskKind: TypeAlias = Literal["scl", "qa_pixel"]

#: Sentinel-2 L2A Scene Classification classes (ESA L2A product specification).
SCL_CLASSES: dict[int, str] = {
    0: "no data",
    1: "saturated or defective",
    2: "dark area pixels / cast shadow",
    3: "cloud shadow",
    4: "vegetation",
    5: "not vegetated (bare)",
    6: "water",
    7: "unclassified",
    8: "cloud medium probability",
    9: "cloud high probability",
    10: "thin cirrus",
    11: "snow or ice",
}

#: SCL classes kept as clear observations by default: vegetation, bare, water,
#: unclassified and snow. Dropped: 0 no data and 1 saturated (no usable value);
#: 2 dark area / cast shadow, because Sen2Cor puts cloud shadows it is unsure of there and
#: terrain shadow darkens reflectance as much as a cloud shadow does; 3 cloud shadow;
#: 8, 9 clouds and 10 thin cirrus, which bias every band upwards. Snow (11) is a real
#: surface state and belongs in a winter composite. Unclassified (7) is mostly clear land
#: at class borders; dropping it empties mountain composites.
DEFAULT_SCL_KEEP: tuple[int, ...] = (4, 5, 6, 7, 11)

#: Landsat Collection 2 QA_PIXEL single-bit flags (bit index -> meaning).
QA_PIXEL_BITS: dict[int, str] = {
    0: "fill",
    1: "dilated cloud",
    2: "cirrus",
    3: "cloud",
    4: "cloud shadow",
    5: "snow",
    6: "clear",
    7: "water",
}

#: QA_PIXEL bits whose pixels are rejected by default: fill, dilated cloud, cirrus,
#: cloud and cloud shadow. Snow (bit 5) is kept for the same reason as SCL class 11.
DEFAULT_QA_REJECT_BITS: tuple[int, ...] = (0, 1, 2, 3, 4)


def _check_distance(value: float, field: str) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"{field} must be a finite distance >= 0 in metres, got {value!r}")


@dataclass(frozen=True)
class SclMaskRule:
    """Which Sentinel-2 SCL classes are clear, and how far clouds and shadows are buffered."""

    keep: tuple[int, ...] = DEFAULT_SCL_KEEP
    """SCL classes that count as clear observations (see :data:`DEFAULT_SCL_KEEP`)."""
    dilate_cloud_m: float = 0.0
    """Buffer around ``cloud_classes`` pixels, in metres; 0 (default) means none."""
    dilate_shadow_m: float = 0.0
    """Buffer around ``shadow_classes`` pixels, in metres; 0 (default) means none."""
    cloud_classes: tuple[int, ...] = (8, 9, 10)
    """Classes buffered by ``dilate_cloud_m``: medium and high probability cloud, cirrus."""
    shadow_classes: tuple[int, ...] = (3,)
    """Classes buffered by ``dilate_shadow_m``: cloud shadow (not terrain shadow, class 2)."""

    def __post_init__(self) -> None:
        valid = set(SCL_CLASSES)
        for field in ("keep", "cloud_classes", "shadow_classes"):
            bad = sorted(set(getattr(self, field)) - valid)
            if bad:
                raise InputError(
                    f"SclMaskRule.{field} has unknown SCL classes {bad}; valid classes are "
                    f"0..11: {SCL_CLASSES}"
                )
        if 0 in self.keep:
            raise InputError("SclMaskRule.keep must not contain 0 (no data): remove it")
        overlap = sorted(set(self.keep) & (set(self.cloud_classes) | set(self.shadow_classes)))
        if overlap:
            raise InputError(
                f"SclMaskRule keeps classes {overlap} that it also buffers as cloud or shadow; "
                "remove them from keep or from cloud_classes/shadow_classes"
            )
        _check_distance(self.dilate_cloud_m, "SclMaskRule.dilate_cloud_m")
        _check_distance(self.dilate_shadow_m, "SclMaskRule.dilate_shadow_m")


@dataclass(frozen=True)
class QaPixelMaskRule:
    """Which Landsat QA_PIXEL bits reject a pixel, and how far clouds and shadows are buffered."""

    reject_bits: tuple[int, ...] = DEFAULT_QA_REJECT_BITS
    """Bits (0..7, see :data:`QA_PIXEL_BITS`) that make a pixel not clear when set.
    The fill bit 0 always rejects, listed or not."""
    dilate_cloud_m: float = 0.0
    """Buffer around ``cloud_bits`` pixels, in metres; 0 (default) means none."""
    dilate_shadow_m: float = 0.0
    """Buffer around ``shadow_bits`` pixels, in metres; 0 (default) means none."""
    cloud_bits: tuple[int, ...] = (2, 3)
    """Bits buffered by ``dilate_cloud_m``: cirrus and cloud. USGS's own "dilated cloud"
    (bit 1) is already a buffer, so it is rejected but not buffered again."""
    shadow_bits: tuple[int, ...] = (4,)
    """Bits buffered by ``dilate_shadow_m``: cloud shadow."""

    def __post_init__(self) -> None:
        for field in ("reject_bits", "cloud_bits", "shadow_bits"):
            bad = sorted(b for b in getattr(self, field) if b not in QA_PIXEL_BITS)
            if bad:
                raise InputError(
                    f"QaPixelMaskRule.{field} has invalid bits {bad}; valid single-bit flags "
                    f"are 0..7: {QA_PIXEL_BITS}"
                )
        unrejected = sorted((set(self.cloud_bits) | set(self.shadow_bits)) - set(self.reject_bits))
        if unrejected:
            raise InputError(
                f"QaPixelMaskRule buffers bits {unrejected} as cloud or shadow but does not "
                "reject them; add them to reject_bits or remove them from cloud_bits/shadow_bits"
            )
        _check_distance(self.dilate_cloud_m, "QaPixelMaskRule.dilate_cloud_m")
        _check_distance(self.dilate_shadow_m, "QaPixelMaskRule.dilate_shadow_m")


MaskRule: TypeAlias = SclMaskRule | QaPixelMaskRule


def rule_for_kind(
    kind: str, *, dilate_cloud_m: float = 0.0, dilate_shadow_m: float = 0.0
) -> MaskRule:
    """The default rule for a quality-layer kind (``"scl"`` or ``"qa_pixel"``), with buffers.

    >>> rule_for_kind("scl", dilate_cloud_m=300).keep
    (4, 5, 6, 7, 11)
    """
    if kind == "scl":
        return SclMaskRule(dilate_cloud_m=dilate_cloud_m, dilate_shadow_m=dilate_shadow_m)
    if kind == "qa_pixel":
        return QaPixelMaskRule(dilate_cloud_m=dilate_cloud_m, dilate_shadow_m=dilate_shadow_m)
    raise InputError(f"unknown mask kind {kind!r}; valid kinds are 'scl' and 'qa_pixel'")


def dilation_radius_px(distance_m: float, pixel_size_m: float) -> int:
    """Buffer radius in whole pixels: ``ceil(distance_m / pixel_size_m)``; 0 for no buffer.

    The ratio is rounded to 9 decimals first so that 30 m at 10 m is 3 pixels, not 4.

    >>> dilation_radius_px(25, 10)
    3
    """
    if not (math.isfinite(pixel_size_m) and pixel_size_m > 0):
        raise InputError(f"pixel_size_m must be a positive size in metres, got {pixel_size_m!r}")
    _check_distance(distance_m, "buffer distance")
    return math.ceil(round(distance_m / pixel_size_m, 9))


def disk(radius_px: int) -> npt.NDArray[np.bool_]:
    """Disk structuring element of ``2 r + 1`` pixels square: True where ``dx² + dy² <= r²``."""
    offsets = np.arange(-radius_px, radius_px + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius_px**2


def _dilate(flags: npt.NDArray[np.bool_], radius_px: int) -> npt.NDArray[np.bool_]:
    """Binary dilation of the last two axes by a disk; leading axes are independent."""
    if radius_px == 0 or not flags.any():
        return flags
    structure = disk(radius_px).reshape((1,) * (flags.ndim - 2) + (2 * radius_px + 1,) * 2)
    dilated: npt.NDArray[np.bool_] = ndimage.binary_dilation(flags, structure=structure)
    return dilated


def _as_integer_codes(mask_band: npt.NDArray[np.generic]) -> npt.NDArray[np.integer]:
    """Integer codes of a quality band; NaN (a float cube's fill) becomes 0, i.e. no data."""
    if np.issubdtype(mask_band.dtype, np.integer):
        return mask_band  # type: ignore[return-value]
    if not np.issubdtype(mask_band.dtype, np.floating):
        raise InputError(
            f"a quality band must hold integer codes, got dtype {mask_band.dtype}; "
            "stack the SCL / QA_PIXEL asset without rescaling"
        )
    return np.where(np.isfinite(mask_band), mask_band, 0).astype(np.uint16)


def _bits_set(codes: npt.NDArray[np.integer], bits: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    bitmask = sum(1 << b for b in set(bits))
    hit: npt.NDArray[np.bool_] = (codes & bitmask) != 0
    return hit


def _radii(rule: MaskRule, pixel_size_m: float) -> tuple[int, int]:
    return (
        dilation_radius_px(rule.dilate_cloud_m, pixel_size_m),
        dilation_radius_px(rule.dilate_shadow_m, pixel_size_m),
    )


def clear_mask(
    mask_band: npt.NDArray[np.generic], rule: MaskRule, *, pixel_size_m: float
) -> npt.NDArray[np.bool_]:
    """True where a pixel is a clear observation to keep, for a quality band ``(..., y, x)``.

    ``mask_band`` holds SCL classes (with an :class:`SclMaskRule`) or QA_PIXEL bit fields
    (with a :class:`QaPixelMaskRule`), as integers (NaN in a float array means no data).
    Cloud and shadow pixels are buffered by the rule's distances, converted to a disk of
    radius ``ceil(distance / pixel_size_m)`` pixels (``pixel_size_m`` in metres, the
    resolution of ``mask_band``), independently for each 2-D slice.
    """
    if mask_band.ndim < 2:
        raise InputError(
            f"a quality band needs at least 2 dims (y, x), got shape {mask_band.shape}"
        )
    cloud_r, shadow_r = _radii(rule, pixel_size_m)
    codes = _as_integer_codes(mask_band)
    if isinstance(rule, SclMaskRule):
        clear = np.isin(codes, rule.keep)
        cloud = np.isin(codes, rule.cloud_classes)
        shadow = np.isin(codes, rule.shadow_classes)
    else:
        reject = (*rule.reject_bits, 0)
        clear = ~_bits_set(codes, reject) & (codes != 0)
        cloud = _bits_set(codes, rule.cloud_bits)
        shadow = _bits_set(codes, rule.shadow_bits)
    if cloud_r:
        clear &= ~_dilate(cloud, cloud_r)
    if shadow_r:
        clear &= ~_dilate(shadow, shadow_r)
    return clear


def clear_mask_xr(mask: xr.DataArray, rule: MaskRule, pixel_size_m: float) -> xr.DataArray:
    """Lazy :func:`clear_mask` on a quality-band DataArray whose last two dims are (y, x).

    Dask-backed input stays lazy: each chunk is extended by the largest buffer radius in
    pixels on y and x (``map_overlap``; no overlap at all when there is no buffer), so the
    result equals the NumPy one regardless of chunking, and keeps the input's chunks.
    Coordinates and dims are kept; the result is boolean and named ``"clear"``.
    """
    if mask.ndim < 2:
        raise InputError(f"a quality band needs at least 2 dims (y, x), got dims {mask.dims}")
    depth = max(_radii(rule, pixel_size_m))
    # A partial of a frozen rule tokenizes stably, so dask graphs get reproducible keys.
    block = partial(clear_mask, rule=rule, pixel_size_m=pixel_size_m)
    data = mask.data
    if not isinstance(data, da.Array):
        return xr.DataArray(
            block(np.asarray(data)), dims=mask.dims, coords=mask.coords, name="clear"
        )
    if depth == 0:
        out = da.map_blocks(block, data, dtype=bool)
    else:
        depths = {axis: 0 for axis in range(data.ndim - 2)} | {
            data.ndim - 2: depth,
            data.ndim - 1: depth,
        }
        out = da.map_overlap(block, data, depth=depths, boundary="none", dtype=bool)
        if out.chunks != data.chunks:
            # dask enlarges chunks smaller than the depth; give back the caller's chunking.
            out = out.rechunk(data.chunks)
    return xr.DataArray(out, dims=mask.dims, coords=mask.coords, name="clear")
