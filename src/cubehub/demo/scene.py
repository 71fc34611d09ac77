"""The nature both synthetic archives show: land cover, its seasonal cycle, and the sky.

Pure numpy on in-memory arrays, deterministic from the random generator it is given. The
sensors' own pixels (Sentinel-2 SCL and 10/20 m grids: :mod:`cubehub.demo.sentinel2_scene`;
Landsat QA_PIXEL, thermal and SLC-off: :mod:`cubehub.demo.landsat_scene`) are built on it.

Land cover and the sky (clouds, shadows, cirrus) live on one coarse grid ("20 m" for
Sentinel-2, the 30 m grid for Landsat); :func:`make_landscape` also gives a texture at twice
that resolution for Sentinel-2's 10 m bands.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from scipy import ndimage

UInt8Array = npt.NDArray[np.uint8]
UInt16Array = npt.NDArray[np.uint16]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
_ScalarT = TypeVar("_ScalarT", bound=np.generic)

#: Surface-reflectance bands in the order of the spectra below (Landsat's ``nir08`` takes
#: the ``nir`` spectrum).
REFLECTANCE_BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")

#: What the sky does to a pixel (:attr:`Sky.kind`), numbered as Sentinel-2's SCL classes so
#: that the Sentinel-2 archive writes them unchanged; 0 is a clear view of the surface.
SKY_CLEAR = 0
SKY_SHADOW = 3
SKY_CLOUD_MEDIUM = 8
SKY_CLOUD_HIGH = 9
SKY_CIRRUS = 10


class LandCover(IntEnum):
    """Land-cover classes of the scene (0 is not used)."""

    WATER = 1
    EVERGREEN_FOREST = 2
    DECIDUOUS_FOREST = 3
    GRASSLAND = 4
    WINTER_CROP = 5
    SUMMER_CROP = 6
    BARE_URBAN = 7


def landcover_flags() -> dict[str, Any]:
    """CF flag attributes of a land-cover layer: the codes and their lower-case names."""
    return {
        "flag_values": [int(c) for c in LandCover],
        "flag_meanings": " ".join(c.name.lower() for c in LandCover),
    }


# Endmember spectra (reflectance, bands as REFLECTANCE_BANDS): typical values for Central
# Europe, mixed by the fraction of green vegetation cover.
_SOIL = np.array([0.10, 0.13, 0.17, 0.24, 0.32, 0.27])
_URBAN = np.array([0.12, 0.13, 0.14, 0.18, 0.22, 0.20])
_BROADLEAF = np.array([0.03, 0.07, 0.03, 0.42, 0.19, 0.09])
_NEEDLELEAF = np.array([0.02, 0.05, 0.02, 0.28, 0.13, 0.06])
_WATER = np.array([0.05, 0.05, 0.03, 0.02, 0.010, 0.008])
#: Reflectance of a thick cloud, bands as REFLECTANCE_BANDS.
CLOUD_SPECTRUM = np.array([0.45, 0.44, 0.43, 0.45, 0.30, 0.22])


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


def upsample2(a: npt.NDArray[_ScalarT]) -> npt.NDArray[_ScalarT]:
    """Repeat every pixel 2 x 2 (20 m grid -> 10 m grid)."""
    return a.repeat(2, axis=-2).repeat(2, axis=-1)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> FloatArray:
    """Smooth random field (zero mean, unit standard deviation) with features ~``cell`` pixels."""
    coarse = rng.standard_normal((shape[0] // cell + 4, shape[1] // cell + 4))
    zoomed: npt.NDArray[np.float64] = ndimage.zoom(coarse, cell, order=3)
    fine = zoomed[cell : cell + shape[0], cell : cell + shape[1]]
    scaled: FloatArray = ((fine - fine.mean()) / max(float(fine.std()), 1e-12)).astype(np.float32)
    return scaled


@dataclass(frozen=True)
class Landscape:
    """What does not change over the year: land cover and per-pixel brightness texture."""

    #: Land-cover class codes (:class:`LandCover`) on the coarse grid, shape (size/2, size/2).
    landcover: UInt8Array
    #: Multiplicative brightness factor of each 10 m pixel (about 0.9..1.1).
    texture_10m: FloatArray
    #: Multiplicative brightness factor of each coarse-grid pixel (about 0.9..1.1).
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


@dataclass(frozen=True)
class Sky:
    """Atmosphere of one acquisition on the coarse grid (Sentinel-2 20 m, Landsat 30 m)."""

    #: :data:`SKY_CLEAR` where the surface is seen clear, else a ``SKY_*`` kind: 3, 8, 9, 10.
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
        kind[cirrus] = SKY_CIRRUS
    kind[shadow] = SKY_SHADOW
    kind[cloud] = np.where(depth >= 0.25, SKY_CLOUD_HIGH, SKY_CLOUD_MEDIUM)
    return Sky(kind, alpha, shadow_factor, cirrus_add)


def swath_valid(shape: tuple[int, int], top: float, bottom: float) -> BoolArray:
    """Pixels inside a swath whose edge runs from column ``top`` x width at the top row to
    ``bottom`` x width at the bottom (fractions of the width; pixel centres west of the line)."""
    rows, cols = shape
    centre_r = np.arange(rows)[:, None] + 0.5
    centre_c = np.arange(cols)[None, :] + 0.5
    edge = (top + (bottom - top) * centre_r / rows) * cols
    return np.asarray(centre_c < edge)
