"""The plan of the synthetic Sentinel-2 archive: its spec, acquisitions, products and items.

Which acquisitions one ODSE year over MGRS tile 33TWN has, with the traps of
:mod:`cubehub.demo.archive` (partial swaths, the baseline 04.00 offset, a reprocessed
duplicate), and each product's STAC item in the Earth Search v1 layout. Metadata only: the
pixels come from :mod:`cubehub.demo.sentinel2_scene`, the files are written by
:mod:`cubehub.demo.archive`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from cubehub.demo import sentinel2_scene as s2
from cubehub.demo.archive_io import COG_TYPE, bbox_of, iso, lonlat_polygon
from cubehub.errors import InputError

__all__ = ["MAX_SIZE", "ArchiveSpec", "item_json", "plan_acquisitions"]

#: Bump when the synthesis or the layout changes, so that cached archives are rebuilt.
ARCHIVE_FORMAT = 1
COLLECTION_ID = "sentinel-2-l2a"
EPSG = 32633
RESOLUTION = 10.0

# MGRS tile 33TWN: upper-left corner and side (10 m pixels), as in the real items.
_TILE_X0, _TILE_Y1, _TILE_SIDE = 499_980.0, 5_300_040.0, 10_980
# Preferred upper-left corner of the window, east of Graz; moved west/north when a large
# window would leave the tile. Both offsets from the tile corner are multiples of 20 m.
_ANCHOR_X0, _ANCHOR_Y1 = 560_000.0, 5_230_000.0
MAX_SIZE = _TILE_SIDE // 32 * 32
MAX_REVISIT_DAYS = 16

#: First day of processing baseline 04.00, which adds +1000 to every L2A DN.
_OFFSET_START = date(2022, 1, 25)
# Processing baselines by processing (generation) date, newest first; "03.01" before.
_BASELINES = (
    (datetime(2022, 12, 6, tzinfo=UTC), "05.09"),
    (datetime.combine(_OFFSET_START, time(), tzinfo=UTC), "04.00"),
)
_PRE_OFFSET_BASELINE = "03.01"
_BOA_OFFSET_DN = 1000
_DUPLICATE_BIAS_DN = 300
#: Relative orbit 79 passes at ~09:57 UTC and covers the window only partly; 122 at ~10:07.
_PARTIAL_ORBIT, _FULL_ORBIT = 79, 122
_PASS_TIME = {_PARTIAL_ORBIT: time(9, 57, 30), _FULL_ORBIT: time(10, 7, 20)}
#: Swath edge of orbit 79 as fractions of the window width at the top and the bottom row.
SWATH_EDGE = (0.62, 0.38)

# Independent random streams, so that changing one part of the synthesis keeps the others.
STREAM_SCHEDULE, STREAM_LAND, STREAM_SURFACE, STREAM_SKY = 1, 2, 3, 4

_EXTENSIONS = [
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]
_LICENSE_LINK = {
    "rel": "license",
    "href": "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice",
}


@dataclass(frozen=True)
class _Band:
    file: str
    description: str
    center_wavelength: float
    full_width_half_max: float


BANDS: dict[str, _Band] = {
    "blue": _Band("B02", "Blue (band 2)", 0.49, 0.098),
    "green": _Band("B03", "Green (band 3)", 0.56, 0.045),
    "red": _Band("B04", "Red (band 4)", 0.665, 0.038),
    "nir": _Band("B08", "NIR 1 (band 8)", 0.842, 0.145),
    "swir16": _Band("B11", "SWIR 1 (band 11)", 1.61, 0.143),
    "swir22": _Band("B12", "SWIR 2 (band 12)", 2.19, 0.242),
}
SCL_FILE = "SCL"


@dataclass(frozen=True)
class ArchiveSpec:
    """What to synthesise. Equal specs give identical pixels, items and truth."""

    size: int = 256
    """Pixels per side at 10 m (20 m assets have ``size // 2``); a multiple of 32 up to 10976.
    The default builds in a few seconds; 1024 or 2048 are benchmark sizes (about 1 s a date
    per 2048 on 2 cores)."""
    year: int = 2022
    """ODSE year: acquisitions from (year-1)-12-02 to year-12-01. 2022 straddles the
    2022-01-25 processing-baseline 04.00 change (the +1000 DN offset)."""
    revisit_days: int = 5
    """Days between acquisitions (1..16); Sentinel-2A and -2B alternate. 5 gives 73 dates."""
    seed: int = 0
    """Seed of every random choice (land cover, clouds, noise); >= 0."""
    land_seed: int | None = None
    """Seed of the land cover alone (default: ``seed``). Archives of several years of one
    place share it and differ in ``seed``: the same land under other clouds and noise."""

    def __post_init__(self) -> None:
        for name in ("size", "year", "revisit_days", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"ArchiveSpec.{name} must be an integer, got {value!r}")
        if self.land_seed is not None and (
            not isinstance(self.land_seed, int)
            or isinstance(self.land_seed, bool)
            or self.land_seed < 0
        ):
            raise InputError(
                f"ArchiveSpec.land_seed must be an integer >= 0, got {self.land_seed!r}"
            )
        if self.size <= 0 or self.size % 32 or self.size > MAX_SIZE:
            lower = max(32, min(MAX_SIZE, self.size // 32 * 32))
            raise InputError(
                f"ArchiveSpec.size must be a positive multiple of 32 up to {MAX_SIZE} "
                f"(pixels per side at 10 m), got {self.size}; use e.g. {lower}"
            )
        if not 2016 <= self.year <= 2100:
            raise InputError(
                f"ArchiveSpec.year must be between 2016 and 2100 (Sentinel-2 era), got {self.year}"
            )
        if not 1 <= self.revisit_days <= MAX_REVISIT_DAYS:
            raise InputError(
                f"ArchiveSpec.revisit_days must be 1..{MAX_REVISIT_DAYS} so that every season "
                f"has several dates, got {self.revisit_days}"
            )
        if self.seed < 0:
            raise InputError(f"ArchiveSpec.seed must be >= 0, got {self.seed}")


# --- the plan: which acquisitions and products, with their traps ---------------------------


@dataclass(frozen=True)
class Product:
    """One STAC item: a processing of an acquisition."""

    id: str
    sequence: int
    generation_time: datetime
    baseline: str
    boa_offset_applied: bool
    #: DN added to every valid pixel: the unremoved +1000 offset and/or the +300 bias.
    dn_add: int

    @property
    def rel_dir(self) -> str:
        """Folder of the item under the archive root, as in the ``sentinel-cogs`` bucket."""
        day = datetime.strptime(self.id.split("_")[2], "%Y%m%d")
        return f"sentinel-s2-l2a-cogs/33/T/WN/{day.year}/{day.month}/{self.id}"


@dataclass(frozen=True)
class Acquisition:
    """One overpass; its last product is the one the truth describes."""

    index: int
    datetime: datetime
    platform: str
    relative_orbit: int
    cloud_fraction: float
    products: tuple[Product, ...]

    @property
    def partial(self) -> bool:
        return self.relative_orbit == _PARTIAL_ORBIT


def _baseline(generated: datetime) -> str:
    for since, name in _BASELINES:
        if generated >= since:
            return name
    return _PRE_OFFSET_BASELINE


def _has_offset(baseline: str) -> bool:
    return tuple(map(int, baseline.split("."))) >= (4, 0)


def plan_acquisitions(spec: ArchiveSpec) -> list[Acquisition]:
    """Acquisition schedule of the ODSE year with per-date cloud cover and products."""
    rng = np.random.default_rng([spec.seed, STREAM_SCHEDULE])
    start, end = date(spec.year - 1, 12, 2), date(spec.year, 12, 1)
    days = [start + timedelta(days=d) for d in range(0, (end - start).days + 1, spec.revisit_days)]
    n = len(days)

    # Cloud cover: ~30 % clear, ~15 % nearly overcast, the rest in between; the first date of
    # every month is clear so that each season keeps some clean observations.
    draw, overcast, partly = rng.random(n), rng.uniform(0.7, 0.85, n), rng.uniform(0.05, 0.6, n)
    cover = np.where(draw < 0.3, 0.0, np.where(draw < 0.45, overcast, partly))
    for i in range(n):
        if i == 0 or days[i].month != days[i - 1].month:
            cover[i] = 0.0

    # Traps. The duplicate sits in summer; unremoved offsets in winter, summer and autumn
    # (only dates processed with baseline >= 04.00 can carry one).
    def nearest(candidates: list[int], target: date) -> int:
        return min(candidates, key=lambda i: abs((days[i] - target).days))

    duplicate = nearest(list(range(n)), date(spec.year, 8, 10))
    with_offset = [i for i in range(n) if days[i] >= _OFFSET_START and i != duplicate]
    unremoved = set(with_offset[:1])
    for target in (date(spec.year, 7, 10), date(spec.year, 10, 20)):
        left = [i for i in with_offset if i not in unremoved]
        if left:
            unremoved.add(nearest(left, target))
    for i in unremoved | {duplicate}:
        cover[i] = 0.1  # mostly clear, so that the trap shows in the composites

    acquisitions = []
    for i, day in enumerate(days):
        orbit = _PARTIAL_ORBIT if (i // 2) % 2 == 0 else _FULL_ORBIT
        jitter = timedelta(milliseconds=int(rng.integers(0, 10_000)))
        sensed = datetime.combine(day, _PASS_TIME[orbit], tzinfo=UTC) + jitter
        platform = "sentinel-2a" if i % 2 == 0 else "sentinel-2b"
        generated = (sensed + timedelta(minutes=int(rng.integers(90, 210)))).replace(microsecond=0)
        sequences = [(0, generated)]
        if i == duplicate:  # reprocessed half a year later, fixing the calibration
            sequences.append((1, generated + timedelta(days=200)))
        products = []
        for seq, gen in sequences:
            baseline = _baseline(gen)
            applied = _has_offset(baseline) and i not in unremoved
            dn_add = _BOA_OFFSET_DN if _has_offset(baseline) and not applied else 0
            if i == duplicate and seq == 0:
                dn_add += _DUPLICATE_BIAS_DN
            item_id = f"S2{platform[-1].upper()}_33TWN_{day:%Y%m%d}_{seq}_L2A"
            products.append(Product(item_id, seq, gen, baseline, applied, dn_add))
        acquisitions.append(
            Acquisition(i, sensed, platform, orbit, float(cover[i]), tuple(products))
        )
    return acquisitions


# --- grid and geometry ----------------------------------------------------------------------


def window_origin(size: int) -> tuple[float, float]:
    """Upper-left corner (x0, y1) of a ``size`` window inside the tile, on the 20 m grid."""
    x0 = min(_ANCHOR_X0, _TILE_X0 + (_TILE_SIDE - size) * RESOLUTION)
    y1 = max(_ANCHOR_Y1, _TILE_Y1 - _TILE_SIDE * RESOLUTION + size * RESOLUTION)
    return x0, y1


def footprint_geometry(spec: ArchiveSpec, partial: bool) -> dict[str, Any]:
    """GeoJSON polygon (lon/lat, counter-clockwise) of the valid data of an item."""
    x0, y1 = window_origin(spec.size)
    side = spec.size * RESOLUTION
    y0, x1 = y1 - side, x0 + side
    if partial:  # the swath edge, as scene.swath_valid draws it
        top, bottom = SWATH_EDGE
        ring = [(x0, y1), (x0, y0), (x0 + bottom * side, y0), (x0 + top * side, y1)]
    else:
        ring = [(x0, y1), (x0, y0), (x1, y0), (x1, y1)]
    return lonlat_polygon(ring, EPSG)


# --- writing --------------------------------------------------------------------------------


def _asset(
    spec: ArchiveSpec, key: str, file: str, resolution: float, raster_band: dict[str, Any]
) -> dict[str, Any]:
    x0, y1 = window_origin(spec.size)
    side = round(spec.size * RESOLUTION / resolution)
    asset: dict[str, Any] = {"href": f"./{file}.tif", "type": COG_TYPE}
    if key in BANDS:
        band = BANDS[key]
        asset["title"] = f"{band.description} - {resolution:g}m"
        asset["eo:bands"] = [
            {
                "name": key,
                "common_name": key,
                "description": band.description,
                "center_wavelength": band.center_wavelength,
                "full_width_half_max": band.full_width_half_max,
            }
        ]
        asset["gsd"] = resolution
    else:
        asset["title"] = "Scene classification map (SCL)"
    asset["proj:shape"] = [side, side]
    asset["proj:transform"] = [resolution, 0.0, x0, 0.0, -resolution, y1]
    asset["raster:bands"] = [raster_band]
    asset["roles"] = ["data", "reflectance"]
    return asset


def item_json(
    spec: ArchiveSpec,
    acq: Acquisition,
    product: Product,
    scl: npt.NDArray[np.uint8],
    footprint: dict[str, Any],
) -> dict[str, Any]:
    """The item as Earth Search v1 writes it, with asset hrefs relative to its folder."""
    counts = np.bincount(scl.ravel(), minlength=12).astype(float)
    valid = max(float(counts[1:].sum()), 1.0)

    def pct(*codes: int) -> float:
        return round(100.0 * float(counts[list(codes)].sum()) / valid, 6)

    created = iso(product.generation_time + timedelta(minutes=30))
    baseline = product.baseline
    sensed_start = acq.datetime - timedelta(minutes=7)
    properties: dict[str, Any] = {
        "created": created,
        "platform": acq.platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": pct(*s2.CLOUDY_SCL),
        "proj:code": f"EPSG:{EPSG}",
        "mgrs:utm_zone": 33,
        "mgrs:latitude_band": "T",
        "mgrs:grid_square": "WN",
        "grid:code": "MGRS-33TWN",
        "s2:nodata_pixel_percentage": round(100.0 * counts[0] / scl.size, 6),
        "s2:cloud_shadow_percentage": pct(s2.SCL_CLOUD_SHADOW),
        "s2:vegetation_percentage": pct(s2.SCL_VEGETATION),
        "s2:not_vegetated_percentage": pct(s2.SCL_NOT_VEGETATED),
        "s2:water_percentage": pct(s2.SCL_WATER),
        "s2:medium_proba_clouds_percentage": pct(s2.SCL_CLOUD_MEDIUM),
        "s2:high_proba_clouds_percentage": pct(s2.SCL_CLOUD_HIGH),
        "s2:thin_cirrus_percentage": pct(s2.SCL_THIN_CIRRUS),
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": baseline,
        "s2:product_uri": (
            f"{product.id[:3]}_MSIL2A_{sensed_start:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}"
            f"_R{acq.relative_orbit:03d}_T33TWN_{product.generation_time:%Y%m%dT%H%M%S}.SAFE"
        ),
        "s2:generation_time": iso(product.generation_time),
        "datetime": iso(acq.datetime),
        "s2:sequence": str(product.sequence),
        "earthsearch:boa_offset_applied": product.boa_offset_applied,
        "updated": created,
    }
    offset = -0.1 if _has_offset(baseline) else 0.0
    assets = {}
    for key, band in BANDS.items():
        resolution = RESOLUTION if key in s2.BANDS_10M else 2 * RESOLUTION
        raster_band = {
            "nodata": 0,
            "data_type": "uint16",
            "bits_per_sample": 15,
            "spatial_resolution": resolution,
            "scale": 0.0001,
            "offset": offset,
        }
        assets[key] = _asset(spec, key, band.file, resolution, raster_band)
    scl_band = {"nodata": 0, "data_type": "uint8", "spatial_resolution": 2 * RESOLUTION}
    assets["scl"] = _asset(spec, "scl", SCL_FILE, 2 * RESOLUTION, scl_band)
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": _EXTENSIONS,
        "id": product.id,
        "properties": properties,
        "geometry": footprint,
        "links": [_LICENSE_LINK],
        "assets": assets,
        "bbox": bbox_of(footprint),
        "collection": COLLECTION_ID,
    }
