"""Sentinel-2 L2A pixels of the synthetic archive: SCL classes, 10 and 20 m bands, DNs.

Built on the shared nature of :mod:`cubehub.demo.scene`. Units: reflectances are digital
numbers (DN) = surface reflectance x 10 000 as ``uint16``, so the truth is exact
(reflectance = DN / 10 000). Land cover, the sky and the swath edge live on the 20 m grid
and are repeated 2 x 2 on the 10 m grid, so a 10 m pixel and its 20 m parent always agree
on their scene class.
"""

from __future__ import annotations

import numpy as np

from cubehub.demo.scene import (
    CLOUD_SPECTRUM,
    REFLECTANCE_BANDS,
    SKY_CIRRUS,
    SKY_CLOUD_HIGH,
    SKY_CLOUD_MEDIUM,
    SKY_SHADOW,
    BoolArray,
    LandCover,
    Landscape,
    Sky,
    UInt8Array,
    UInt16Array,
    class_reflectance,
    upsample2,
)

BANDS_10M = ("blue", "green", "red", "nir")
BANDS_20M = ("swir16", "swir22")

#: Scene classification (SCL) codes this scene produces.
SCL_NODATA = 0
SCL_CLOUD_SHADOW = SKY_SHADOW
SCL_VEGETATION = 4
SCL_NOT_VEGETATED = 5
SCL_WATER = 6
SCL_CLOUD_MEDIUM = SKY_CLOUD_MEDIUM
SCL_CLOUD_HIGH = SKY_CLOUD_HIGH
SCL_THIN_CIRRUS = SKY_CIRRUS
#: SCL codes of pixels that show the clear surface.
CLEAR_SCL = (SCL_VEGETATION, SCL_NOT_VEGETATED, SCL_WATER)
#: SCL codes counted in ``eo:cloud_cover``: shadows, clouds and cirrus.
CLOUDY_SCL = (SCL_CLOUD_SHADOW, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_THIN_CIRRUS)

#: Smallest and largest surface DN: the truth is always > 0 (0 is nodata), and the largest
#: DN plus the +1000 offset and the +300 duplicate bias still fits in uint16.
MIN_DN = 1
MAX_DN = 20_000
#: NDVI above which the clear-sky SCL calls a land pixel vegetation (4) rather than bare (5).
_SCL_VEGETATION_NDVI = 0.4


def clear_scl_by_class(doy: float) -> UInt8Array:
    """Clear-sky SCL code per class code on day ``doy``: water 6, green land 4, other land 5."""
    table = class_reflectance(doy)
    red, nir = table[:, REFLECTANCE_BANDS.index("red")], table[:, REFLECTANCE_BANDS.index("nir")]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-9)
    scl = np.where(ndvi > _SCL_VEGETATION_NDVI, SCL_VEGETATION, SCL_NOT_VEGETATED)
    scl[LandCover.WATER] = SCL_WATER
    return scl.astype(np.uint8)


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
        dn = dn * (1 - alpha) + np.float32(CLOUD_SPECTRUM[b] * 1e4) * alpha
        recorded = np.clip(np.rint(dn), MIN_DN, MAX_DN).astype(np.uint16) + np.uint16(dn_add)
        if inside is not None:
            recorded[~inside] = 0
        out[band] = recorded
    return out
