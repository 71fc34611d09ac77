"""Pure pixel synthesis for the synthetic Sentinel-2 L2A archive.

Everything here is numpy on in-memory arrays, deterministic from the random generator it is
given; writing files and STAC items is :mod:`cubehub.testing.archive`'s job.

Units: reflectances are digital numbers (DN) = surface reflectance x 10 000 as ``uint16``,
so the truth is exact (reflectance = DN / 10 000). Land cover, the sky (clouds, shadows,
cirrus) and the swath edge live on the 20 m grid and are repeated 2 x 2 on the 10 m grid, so
a 10 m pixel and its 20 m parent always agree on their scene class.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from scipy import ndimage

UInt8Array = npt.NDArray[np.uint8]
UInt16Array = npt.NDArray[np.uint16]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
_ScalarT = TypeVar("_ScalarT", bound=np.generic)

BANDS_10M = ("blue", "green", "red", "nir")
BANDS_20M = ("swir16", "swir22")
#: Surface-reflectance bands in the order of the spectra below.
REFLECTANCE_BANDS = BANDS_10M + BANDS_20M

#: Scene classification (SCL) codes this scene produces.
SCL_NODATA = 0
SCL_CLOUD_SHADOW = 3
SCL_VEGETATION = 4
SCL_NOT_VEGETATED = 5
SCL_WATER = 6
SCL_CLOUD_MEDIUM = 8
SCL_CLOUD_HIGH = 9
SCL_THIN_CIRRUS = 10
#: SCL codes of pixels that show the clear surface.
CLEAR_SCL = (SCL_VEGETATION, SCL_NOT_VEGETATED, SCL_WATER)
#: SCL codes counted in ``eo:cloud_cover``: shadows, clouds and cirrus.
CLOUDY_SCL = (SCL_CLOUD_SHADOW, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_THIN_CIRRUS)

#: Smallest and largest surface DN: the truth is always > 0 (0 is nodata), and the largest
#: DN plus the +1000 offset and the +300 duplicate bias still fits in uint16.
MIN_DN = 1
MAX_DN = 20_000


class LandCover(IntEnum):
    """Land-cover classes of the scene (0 is not used)."""

    WATER = 1
    EVERGREEN_FOREST = 2
    DECIDUOUS_FOREST = 3
    GRASSLAND = 4
    WINTER_CROP = 5
    SUMMER_CROP = 6
    BARE_URBAN = 7


# Endmember spectra (reflectance, bands as REFLECTANCE_BANDS): typical values for Central
# Europe, mixed by the fraction of green vegetation cover.
_SOIL = np.array([0.10, 0.13, 0.17, 0.24, 0.32, 0.27])
_URBAN = np.array([0.12, 0.13, 0.14, 0.18, 0.22, 0.20])
_BROADLEAF = np.array([0.03, 0.07, 0.03, 0.42, 0.19, 0.09])
_NEEDLELEAF = np.array([0.02, 0.05, 0.02, 0.28, 0.13, 0.06])
_WATER = np.array([0.05, 0.05, 0.03, 0.02, 0.010, 0.008])
_CLOUD = np.array([0.45, 0.44, 0.43, 0.45, 0.30, 0.22])
#: NDVI above which the clear-sky SCL calls a land pixel vegetation (4) rather than bare (5).
_SCL_VEGETATION_NDVI = 0.4


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def _bump(doy: float, peak: float, width: float) -> float:
    """Gaussian bump over the day of year, wrapping around the year end."""
    d = (doy - peak + 182.5) % 365.0 - 182.5
    return float(np.exp(-0.5 * (d / width) ** 2))


def greenness(cover: LandCover, doy: float) -> float:
    """Fraction of green vegetation cover (0..1) of a land-cover class on day of year ``doy``."""
    if cover is LandCover.WATER:
        return 0.0
    if cover is LandCover.EVERGREEN_FOREST:
        return 0.65 + 0.15 * _bump(doy, 190, 60)
    if cover is LandCover.DECIDUOUS_FOREST:  # leaf-on late April, leaf-off mid October
        return 0.1 + 0.85 * _sigmoid((doy - 115) / 8) * _sigmoid((290 - doy) / 10)
    if cover is LandCover.GRASSLAND:
        return 0.35 + 0.5 * _bump(doy, 150, 55)
    if cover is LandCover.WINTER_CROP:  # green in spring, harvested early July, sown in autumn
        spring = _sigmoid((doy - 80) / 12) * _sigmoid((185 - doy) / 4)
        return 0.1 + 0.8 * spring + 0.2 * _sigmoid((doy - 300) / 10)
    if cover is LandCover.SUMMER_CROP:  # maize-like: peak in early August
        return 0.05 + 0.9 * _bump(doy, 215, 30)
    return 0.08  # bare soil and built-up land


def class_reflectance(doy: float) -> npt.NDArray[np.float64]:
    """Mean surface reflectance per class on day ``doy``: shape (8, 6), row = class code."""
    table = np.zeros((max(LandCover) + 1, len(REFLECTANCE_BANDS)))
    for cover in LandCover:
        v = greenness(cover, doy)
        if cover is LandCover.WATER:
            table[cover] = _WATER
        elif cover is LandCover.EVERGREEN_FOREST:
            table[cover] = (1 - v) * _SOIL + v * _NEEDLELEAF
        elif cover is LandCover.BARE_URBAN:
            table[cover] = (1 - v) * _URBAN + v * _BROADLEAF
        else:
            table[cover] = (1 - v) * _SOIL + v * _BROADLEAF
    return table


def clear_scl_by_class(doy: float) -> UInt8Array:
    """Clear-sky SCL code per class code on day ``doy``: water 6, green land 4, other land 5."""
    table = class_reflectance(doy)
    red, nir = table[:, REFLECTANCE_BANDS.index("red")], table[:, REFLECTANCE_BANDS.index("nir")]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-9)
    scl = np.where(ndvi > _SCL_VEGETATION_NDVI, SCL_VEGETATION, SCL_NOT_VEGETATED)
    scl[LandCover.WATER] = SCL_WATER
    return scl.astype(np.uint8)


def upsample2(a: npt.NDArray[_ScalarT]) -> npt.NDArray[_ScalarT]:
    """Repeat every pixel 2 x 2 (20 m grid -> 10 m grid)."""
    return a.repeat(2, axis=-2).repeat(2, axis=-1)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> FloatArray:
    """Smooth random field (zero mean, unit standard deviation) with features ~``cell`` pixels."""
    coarse = rng.standard_normal((shape[0] // cell + 4, shape[1] // cell + 4))
    fine = ndimage.zoom(coarse, cell, order=3)[cell : cell + shape[0], cell : cell + shape[1]]
    return ((fine - fine.mean()) / max(float(fine.std()), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class Landscape:
    """What does not change over the year: land cover and per-pixel brightness texture."""

    #: Land-cover class codes (:class:`LandCover`) on the 20 m grid, shape (size/2, size/2).
    landcover: UInt8Array
    #: Multiplicative brightness factor of each 10 m pixel (about 0.9..1.1).
    texture_10m: FloatArray
    #: Multiplicative brightness factor of each 20 m pixel (about 0.9..1.1).
    texture_20m: FloatArray


def make_landscape(size: int, rng: np.random.Generator) -> Landscape:
    """Land cover and texture of a ``size`` x ``size`` window at 10 m (size even).

    Forests on the high ground, lakes in the lowest valleys, a built-up patch, and the rest
    farmland cut into 240 m x 160 m parcels of winter crops, summer crops and grass.
    """
    n = size // 2
    shape = (n, n)
    relief = smooth_noise(rng, shape, 48) + 0.3 * smooth_noise(rng, shape, 12)
    built = smooth_noise(rng, shape, 24)
    leaf_type = smooth_noise(rng, shape, 16)
    forest = relief > np.quantile(relief, 0.6)
    water = relief < np.quantile(relief, 0.07)
    urban = (built > np.quantile(built, 0.88)) & ~forest & ~water

    parcel_rows, parcel_cols = 12, 8
    crops = np.array([LandCover.WINTER_CROP, LandCover.SUMMER_CROP, LandCover.GRASSLAND])
    parcels = rng.choice(
        crops, p=[0.4, 0.35, 0.25], size=(n // parcel_rows + 1, n // parcel_cols + 1)
    )
    landcover = parcels.repeat(parcel_rows, 0).repeat(parcel_cols, 1)[:n, :n].astype(np.uint8)
    landcover[forest] = np.where(
        leaf_type[forest] > 0, LandCover.DECIDUOUS_FOREST, LandCover.EVERGREEN_FOREST
    )
    landcover[water] = LandCover.WATER
    landcover[urban] = LandCover.BARE_URBAN

    def texture(side: int, cell: int) -> FloatArray:
        field = 0.04 * smooth_noise(rng, (side, side), cell) + 0.02 * rng.standard_normal(
            (side, side), dtype=np.float32
        )
        return np.clip(1.0 + field, 0.85, 1.15).astype(np.float32)

    return Landscape(landcover, texture(size, 6), texture(n, 3))


def surface_dn(land: Landscape, doy: float, rng: np.random.Generator) -> dict[str, UInt16Array]:
    """Clear-sky surface reflectance DN of one date, per band at its native grid.

    10 m bands have shape (size, size), 20 m bands (size/2, size/2). Besides the class
    curves and the static texture, every pixel gets 2 % multiplicative noise per date.
    """
    table = class_reflectance(doy).astype(np.float32)
    lc_20m = land.landcover
    lc_10m = upsample2(lc_20m)
    out: dict[str, UInt16Array] = {}
    for b, band in enumerate(REFLECTANCE_BANDS):
        lc, texture = (
            (lc_10m, land.texture_10m) if band in BANDS_10M else (lc_20m, land.texture_20m)
        )
        noise = 1.0 + 0.02 * rng.standard_normal(lc.shape, dtype=np.float32)
        refl = table[lc, b] * texture * noise
        out[band] = np.clip(np.rint(refl * 1e4), MIN_DN, MAX_DN).astype(np.uint16)
    return out


@dataclass(frozen=True)
class Sky:
    """Atmosphere of one acquisition on the 20 m grid."""

    #: 0 where the surface is seen clear, else the SCL code: 3, 8, 9 or 10.
    kind: UInt8Array
    #: Cloud opacity in [0, 1] (0 outside clouds): DN = surface x (1 - a) + cloud x a.
    cloud_alpha: FloatArray
    #: Factor on reflectance in cloud shadows (0.3..0.5).
    shadow_factor: float
    #: Reflectance added under thin cirrus (0.02..0.05).
    cirrus_add: float


def make_sky(
    shape: tuple[int, int],
    cloud_fraction: float,
    rng: np.random.Generator,
    within: BoolArray | None = None,
) -> Sky:
    """Clouds covering ``cloud_fraction`` (0..1) of the 20 m grid, their shadows and cirrus.

    With ``within`` (the swath), the fractions apply to the pixels inside it.

    Cloud blobs are thresholded smooth noise; their dense cores are SCL 9 (high
    probability), their fringes SCL 8. Shadows are the clouds moved 3..8 pixels (60..160 m)
    north-west, as the late-morning sun from the south-east casts them. A cloud-free date
    (``cloud_fraction == 0``) has no cirrus either.
    """
    kind = np.zeros(shape, np.uint8)
    alpha = np.zeros(shape, np.float32)
    shadow_factor = float(rng.uniform(0.3, 0.5))
    cirrus_add = float(rng.uniform(0.02, 0.05))
    if cloud_fraction <= 0:
        return Sky(kind, alpha, shadow_factor, cirrus_add)

    def inside(field: FloatArray) -> FloatArray:
        return field if within is None else field[within]

    density = smooth_noise(rng, shape, 16) + 0.4 * smooth_noise(rng, shape, 4)
    threshold = np.quantile(inside(density), 1.0 - cloud_fraction)
    cloud = density > threshold
    # Depth into the cloud, 0 at its edge .. 1 at the densest pixel; opacity saturates halfway.
    depth = (density[cloud] - threshold) / max(float(density.max() - threshold), 1e-6)
    alpha[cloud] = 0.55 + 0.45 * np.minimum(1.0, 2.0 * depth)

    rows, cols = (int(v) for v in rng.integers(3, 9, size=2))
    shadow = np.zeros(shape, bool)
    shadow[:-rows, :-cols] = cloud[rows:, cols:]

    if rng.random() < 0.6:
        haze = smooth_noise(rng, shape, 24)
        share = rng.uniform(0.03, 0.15) * (1.0 - cloud_fraction)  # haze between the clouds
        cirrus = haze > np.quantile(inside(haze), 1.0 - share)
        kind[cirrus] = SCL_THIN_CIRRUS
    kind[shadow] = SCL_CLOUD_SHADOW
    kind[cloud] = np.where(depth >= 0.25, SCL_CLOUD_HIGH, SCL_CLOUD_MEDIUM)
    return Sky(kind, alpha, shadow_factor, cirrus_add)


def swath_valid(shape: tuple[int, int], top: float, bottom: float) -> BoolArray:
    """Pixels inside a swath whose edge runs from column ``top`` x width at the top row to
    ``bottom`` x width at the bottom (fractions of the width; pixel centres west of the line)."""
    rows, cols = shape
    centre_r = np.arange(rows)[:, None] + 0.5
    centre_c = np.arange(cols)[None, :] + 0.5
    edge = (top + (bottom - top) * centre_r / rows) * cols
    return np.asarray(centre_c < edge)


def scene_classification(
    land: Landscape, doy: float, sky: Sky, valid: BoolArray | None
) -> UInt8Array:
    """SCL on the 20 m grid: sky classes over the clear-sky class; 0 outside the swath."""
    scl = clear_scl_by_class(doy)[land.landcover]
    scl = np.where(sky.kind > 0, sky.kind, scl).astype(np.uint8)
    if valid is not None:
        scl[~valid] = SCL_NODATA
    return scl


def observe(
    surface: dict[str, UInt16Array], sky: Sky, valid: BoolArray | None, dn_add: int
) -> dict[str, UInt16Array]:
    """DN the sensor records: the surface seen through ``sky``, 0 outside the swath.

    ``dn_add`` is added to every valid pixel of every band: 1000 for the processing-baseline
    04.00 offset that the provider did not remove, 300 for a miscalibrated product.
    """
    on_20m = (sky.kind, sky.cloud_alpha, valid)
    on_10m = (
        upsample2(sky.kind),
        upsample2(sky.cloud_alpha),
        None if valid is None else upsample2(valid),
    )
    out: dict[str, UInt16Array] = {}
    for b, band in enumerate(REFLECTANCE_BANDS):
        kind, alpha, inside = on_10m if band in BANDS_10M else on_20m
        dn = surface[band].astype(np.float32)
        dn = np.where(kind == SCL_CLOUD_SHADOW, dn * sky.shadow_factor, dn)
        dn = np.where(kind == SCL_THIN_CIRRUS, dn + sky.cirrus_add * 1e4, dn)
        dn = dn * (1 - alpha) + np.float32(_CLOUD[b] * 1e4) * alpha
        recorded = np.clip(np.rint(dn), MIN_DN, MAX_DN).astype(np.uint16) + np.uint16(dn_add)
        if inside is not None:
            recorded[~inside] = 0
        out[band] = recorded
    return out
