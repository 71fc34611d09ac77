"""Landsat Collection 2 Level-2 pixels of the synthetic archive: SR and ST DNs, QA_PIXEL.

Built on the shared nature of :mod:`cubehub.demo.scene` (land cover, seasons, sky), on the
30 m grid. Pure numpy, deterministic from the random generator given.

Units, as USGS stores them (``uint16``, 0 = no data):

* surface reflectance ``SR_B*``: reflectance = DN x 2.75e-5 - 0.2 (:data:`SR_SCALE`,
  :data:`SR_OFFSET`); the truth is a DN, so exact in these units;
* surface temperature ``ST_B10`` / ``ST_B6``: kelvin = DN x 0.00341802 + 149.0;
* ``QA_PIXEL`` bits (:data:`cubehub.compute.masks.QA_PIXEL_BITS`): 0 fill, 1 dilated cloud,
  2 cirrus, 3 cloud, 4 cloud shadow, 5 snow, 6 clear, 7 water, and the 2-bit confidences
  of cloud (8-9), shadow (10-11), snow (12-13) and cirrus (14-15, OLI only) — the values
  CFMask writes (21824 clear land, 21952 clear water on OLI; 5440 clear land on TM/ETM+).

Snow is a state of the surface (in the truth, QA bit 5, kept by the default mask rule);
clouds, their fringe (dilated cloud), shadows and cirrus are in the files only. TM and ETM+
have no cirrus band: their skies show no cirrus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from cubehub.demo.scene import (
    CLOUD_SPECTRUM,
    SKY_CIRRUS,
    SKY_CLOUD_HIGH,
    SKY_CLOUD_MEDIUM,
    SKY_SHADOW,
    BoolArray,
    LandCover,
    Landscape,
    Sky,
    UInt16Array,
    class_reflectance,
    smooth_noise,
)

__all__ = [
    "BANDS",
    "QA_FILL",
    "SR_BANDS",
    "SR_OFFSET",
    "SR_SCALE",
    "ST_OFFSET",
    "ST_SCALE",
    "THERMAL_BAND",
    "Surface",
    "dilated_ring",
    "observe",
    "qa_pixel",
    "sensor_sky",
    "sky_clear",
    "slc_off_valid",
    "sr_dn",
    "st_dn",
    "surface",
]

#: Reflectance bands (cubehub's common names) in the order of the shared spectra, and the
#: thermal band.
SR_BANDS = ("blue", "green", "red", "nir08", "swir16", "swir22")
THERMAL_BAND = "lwir11"
BANDS = (*SR_BANDS, THERMAL_BAND)
SR_SCALE, SR_OFFSET = 2.75e-5, -0.2
ST_SCALE, ST_OFFSET = 0.00341802, 149.0

QA_FILL = 1
_DILATED, _CIRRUS, _CLOUD, _SHADOW, _SNOW, _CLEAR, _WATER = (1 << b for b in range(1, 8))


def _confidence(cloud: int, shadow: int, snow: int, cirrus: int) -> int:
    """The 2-bit confidence fields (0 none, 1 low, 2 medium, 3 high) of bits 8..15."""
    return (cloud << 8) | (shadow << 10) | (snow << 12) | (cirrus << 14)


def _snow_spectrum() -> npt.NDArray[np.float64]:
    return np.array([0.80, 0.78, 0.75, 0.65, 0.10, 0.08])


def sr_dn(reflectance: npt.NDArray[np.floating]) -> UInt16Array:
    """Surface reflectance to the SR DN that stores it (rounded; >= 1, so never no data)."""
    dn = np.rint((reflectance - SR_OFFSET) / SR_SCALE)
    stored: UInt16Array = np.clip(dn, 1, 65_535).astype(np.uint16)
    return stored


def st_dn(kelvin: npt.NDArray[np.floating]) -> UInt16Array:
    """Surface temperature (K) to the ST DN that stores it (rounded; >= 1)."""
    dn = np.rint((kelvin - ST_OFFSET) / ST_SCALE)
    stored: UInt16Array = np.clip(dn, 1, 65_535).astype(np.uint16)
    return stored


# Surface temperature: annual cycle at the site (K) and each class's departure in summer.
_MEAN_K, _AMPLITUDE_K, _WARMEST_DOY = 283.0, 12.0, 200
_SUMMER_DEPARTURE_K = {
    LandCover.WATER: -4.0,
    LandCover.EVERGREEN_FOREST: -3.0,
    LandCover.DECIDUOUS_FOREST: -2.5,
    LandCover.GRASSLAND: 0.0,
    LandCover.WINTER_CROP: 1.0,
    LandCover.SUMMER_CROP: 0.5,
    LandCover.BARE_URBAN: 5.0,
}
_SNOW_K, _CLOUD_TOP_K = 268.0, 250.0


@dataclass(frozen=True)
class Surface:
    """The clear-sky surface of one date on the 30 m grid: the truth the files hide."""

    #: SR and ST DNs by band name (:data:`BANDS`), shape (size, size).
    dn: dict[str, UInt16Array]
    #: Pixels under snow (a surface state: in the truth, and QA bit 5 in the files).
    snow: BoolArray
    #: Water pixels (QA bit 7 where clear).
    water: BoolArray


def surface(land: Landscape, doy: float, snow_fraction: float, rng: np.random.Generator) -> Surface:
    """Clear-sky SR and ST DNs of one date, with snow over ``snow_fraction`` of the land.

    Land cover and texture are the landscape's coarse grid (``landcover``, ``texture_20m``),
    here the 30 m grid. Every pixel gets 2 % multiplicative reflectance noise and 0.5 K
    temperature noise per date.
    """
    lc = land.landcover
    shape = lc.shape
    table = class_reflectance(doy).astype(np.float32)
    noise = 1.0 + 0.02 * rng.standard_normal((len(SR_BANDS), *shape), dtype=np.float32)
    refl = table[lc].transpose(2, 0, 1) * land.texture_20m * noise
    water = lc == LandCover.WATER
    snow = np.zeros(shape, bool)
    if snow_fraction > 0:
        field = smooth_noise(rng, shape, 12)
        snow = (field > np.quantile(field, 1.0 - snow_fraction)) & ~water
        refl = np.where(snow, _snow_spectrum()[:, None, None], refl)
    season = np.cos(2 * np.pi * (doy - _WARMEST_DOY) / 365.0)
    departure = np.zeros(max(LandCover) + 1, np.float32)
    for cover, summer in _SUMMER_DEPARTURE_K.items():
        departure[cover] = summer * max(season, 0.0)
    kelvin = _MEAN_K + _AMPLITUDE_K * season + departure[lc]
    kelvin = kelvin + 0.5 * rng.standard_normal(shape, dtype=np.float32)
    kelvin = np.where(snow, _SNOW_K, kelvin)
    dn = {band: sr_dn(refl[b]) for b, band in enumerate(SR_BANDS)}
    dn[THERMAL_BAND] = st_dn(kelvin)
    return Surface(dn, snow, water)


def sensor_sky(sky: Sky, has_cirrus_band: bool) -> Sky:
    """The sky as a sensor sees it: TM and ETM+ (no cirrus band) see no cirrus at all."""
    if has_cirrus_band or not (sky.kind == SKY_CIRRUS).any():
        return sky
    kind = np.where(sky.kind == SKY_CIRRUS, 0, sky.kind).astype(np.uint8)
    return Sky(kind, sky.cloud_alpha, sky.shadow_factor, sky.cirrus_add)


def dilated_ring(sky: Sky) -> BoolArray:
    """The 2-pixel fringe around clouds that CFMask flags as dilated cloud (bit 1)."""
    cloud = np.isin(sky.kind, (SKY_CLOUD_MEDIUM, SKY_CLOUD_HIGH))
    grown: BoolArray = ndimage.binary_dilation(cloud, iterations=2)
    return grown & ~cloud


def qa_pixel(sky: Sky, ground: Surface, oli: bool, valid: BoolArray) -> UInt16Array:
    """QA_PIXEL of one overpass: 1 (fill) outside ``valid``, else the CFMask bits."""
    cirrus_conf = 1 if oli else 0
    clear = _CLEAR | _confidence(1, 1, 1, cirrus_conf)
    qa = np.full(sky.kind.shape, clear, np.uint16)
    qa[ground.water] |= _WATER
    qa[ground.snow] = _CLEAR | _SNOW | _confidence(1, 1, 3, cirrus_conf)
    ring = dilated_ring(sky)
    qa[ring] = _DILATED | _confidence(1, 1, 1, cirrus_conf)
    qa[sky.kind == SKY_SHADOW] = _CLEAR | _SHADOW | _confidence(1, 3, 1, cirrus_conf)
    qa[sky.kind == SKY_CIRRUS] = _CLEAR | _CIRRUS | _confidence(1, 1, 1, 3)
    qa[sky.kind == SKY_CLOUD_MEDIUM] = _CLOUD | _confidence(2, 1, 1, cirrus_conf)
    qa[sky.kind == SKY_CLOUD_HIGH] = _CLOUD | _confidence(3, 1, 1, cirrus_conf)
    qa[~valid] = QA_FILL
    return qa


def observe(ground: Surface, sky: Sky, valid: BoolArray) -> dict[str, UInt16Array]:
    """DNs the sensor records: the surface through ``sky``; 0 outside ``valid``.

    Clouds blend the surface with :data:`CLOUD_SPECTRUM` and a cold cloud top; the dilated
    fringe is a thin haze (opacity 0.15); shadows darken reflectance and cool by 3 K;
    cirrus adds reflectance.
    """
    ring = dilated_ring(sky)
    alpha = np.where(ring, np.float32(0.15), sky.cloud_alpha).astype(np.float32)
    shadow, cirrus = sky.kind == SKY_SHADOW, sky.kind == SKY_CIRRUS
    # Pixels the sky leaves alone keep the surface's DN exactly (no float round trip).
    touched = shadow | cirrus | (alpha > 0)
    out: dict[str, UInt16Array] = {}
    for b, band in enumerate(SR_BANDS):
        refl = ground.dn[band] * np.float32(SR_SCALE) + np.float32(SR_OFFSET)
        refl = np.where(shadow, refl * sky.shadow_factor, refl)
        refl = np.where(cirrus, refl + sky.cirrus_add, refl)
        refl = refl * (1 - alpha) + np.float32(CLOUD_SPECTRUM[b]) * alpha
        out[band] = np.where(touched, sr_dn(refl), ground.dn[band]).astype(np.uint16)
    kelvin = ground.dn[THERMAL_BAND] * np.float32(ST_SCALE) + np.float32(ST_OFFSET)
    kelvin = np.where(shadow, kelvin - 3.0, kelvin) * (1 - alpha) + _CLOUD_TOP_K * alpha
    out[THERMAL_BAND] = np.where(touched, st_dn(kelvin), ground.dn[THERMAL_BAND]).astype(np.uint16)
    for dn in out.values():
        dn[~valid] = 0
    return out


def slc_off_valid(
    shape: tuple[int, int], gap_px: float, phase: float, slope: float = 0.14
) -> BoolArray:
    """Pixels ETM+ still records after its scan-line corrector failed (2003-05-31).

    Each scan of 16 lines (480 m) is followed by a wedge-shaped gap, ``gap_px`` pixels wide
    here (0 at the scene's centre line to about 14 at its edges), running across the scene
    at the scan direction's tilt (``slope`` rows per column). ``phase`` (0..1) shifts the
    pattern along the track. Gap pixels are fill: 0 in the bands, 1 in QA_PIXEL.
    """
    rows, cols = shape
    period = 16.0 + gap_px
    r = np.arange(rows)[:, None] + 0.5
    c = np.arange(cols)[None, :] + 0.5
    position = (r + slope * c + phase * period) % period
    return np.asarray(position >= gap_px)


def sky_clear(sky: Sky, valid: BoolArray) -> BoolArray:
    """The truth's clear pixels: recorded (``valid``), under no cloud, fringe, shadow or
    cirrus. Snow is clear: a state of the surface. Drawn from the synthesis itself, not
    from QA_PIXEL, so that the truth checks the pipeline's mask rather than repeating it."""
    hidden = np.isin(sky.kind, (SKY_CLOUD_MEDIUM, SKY_CLOUD_HIGH, SKY_SHADOW, SKY_CIRRUS))
    return np.asarray(valid & ~hidden & ~dilated_ring(sky))
