"""A synthetic Sentinel-2 L2A archive with known truth, laid out like Earth Search v1.

:func:`build_archive` writes one ODSE year of acquisitions over a window of MGRS tile 33TWN
(EPSG:32633) as Cloud-Optimized GeoTIFFs plus STAC item JSON, in the folder layout of the
``sentinel-cogs`` bucket, and the cloud-free truth next to them. The archive carries the
traps a real one has, so the pipeline is tested on them:

* clouds (SCL 8/9), thin cirrus (SCL 10) and cloud shadows (SCL 3) in the files;
* a swath edge: relative orbit 79 sees only the western part of the window, the rest is 0;
* processing baseline 04.00 from 2022-01-25: ``raster:bands`` say ``offset: -0.1``; most such
  items have ``earthsearch:boa_offset_applied: true`` (DN = reflectance x 10 000, the offset
  already removed), a few say ``false`` and their DN carry the +1000;
* one acquisition twice, as ``_0_`` and as a later ``_1_`` reprocessing; the ``_0_`` has a
  +300 DN calibration error, the ``_1_`` is the truth;
* ``proj:code`` (projection extension v2) and no ``proj:epsg``.

Pixels come from :mod:`cubehub.testing.scene`; this module plans the acquisitions and writes
files. One date is synthesised and written at a time, so memory stays bounded at any size.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import numpy.typing as npt
import pyproj
import rasterio
import xarray as xr
import zarr
from rasterio.transform import Affine

from cubehub.errors import DataError, InputError
from cubehub.testing import scene

__all__ = ["Archive", "ArchiveSpec", "build_archive"]

#: Bump when the synthesis or the layout changes, so that cached archives are rebuilt.
ARCHIVE_FORMAT = 1
MANIFEST_NAME = "cubehub-archive.json"
TRUTH_NAME = "truth.zarr"
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
_SWATH_EDGE = (0.62, 0.38)

# Independent random streams, so that changing one part of the synthesis keeps the others.
_STREAM_SCHEDULE, _STREAM_LAND, _STREAM_SURFACE, _STREAM_SKY = 1, 2, 3, 4
#: Bytes of one 10 m truth band buffered before a write (bounds memory at large sizes).
_TRUTH_BLOCK_BYTES = 16 * 2**20

_EXTENSIONS = [
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]
_COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
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


_BANDS: dict[str, _Band] = {
    "blue": _Band("B02", "Blue (band 2)", 0.49, 0.098),
    "green": _Band("B03", "Green (band 3)", 0.56, 0.045),
    "red": _Band("B04", "Red (band 4)", 0.665, 0.038),
    "nir": _Band("B08", "NIR 1 (band 8)", 0.842, 0.145),
    "swir16": _Band("B11", "SWIR 1 (band 11)", 1.61, 0.143),
    "swir22": _Band("B12", "SWIR 2 (band 12)", 2.19, 0.242),
}
_SCL_FILE = "SCL"


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

    def __post_init__(self) -> None:
        for name in ("size", "year", "revisit_days", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"ArchiveSpec.{name} must be an integer, got {value!r}")
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
class _Product:
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
class _Acquisition:
    """One overpass; its last product is the one the truth describes."""

    index: int
    datetime: datetime
    platform: str
    relative_orbit: int
    cloud_fraction: float
    products: tuple[_Product, ...]

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


def _plan(spec: ArchiveSpec) -> list[_Acquisition]:
    """Acquisition schedule of the ODSE year with per-date cloud cover and products."""
    rng = np.random.default_rng([spec.seed, _STREAM_SCHEDULE])
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
            products.append(_Product(item_id, seq, gen, baseline, applied, dn_add))
        acquisitions.append(
            _Acquisition(i, sensed, platform, orbit, float(cover[i]), tuple(products))
        )
    return acquisitions


# --- grid and geometry ----------------------------------------------------------------------


def _window_origin(size: int) -> tuple[float, float]:
    """Upper-left corner (x0, y1) of a ``size`` window inside the tile, on the 20 m grid."""
    x0 = min(_ANCHOR_X0, _TILE_X0 + (_TILE_SIDE - size) * RESOLUTION)
    y1 = max(_ANCHOR_Y1, _TILE_Y1 - _TILE_SIDE * RESOLUTION + size * RESOLUTION)
    return x0, y1


def _footprint(spec: ArchiveSpec, partial: bool) -> dict[str, Any]:
    """GeoJSON polygon (lon/lat, counter-clockwise) of the valid data of an item."""
    x0, y1 = _window_origin(spec.size)
    side = spec.size * RESOLUTION
    y0, x1 = y1 - side, x0 + side
    if partial:  # the swath edge, as scene.swath_valid draws it
        top, bottom = _SWATH_EDGE
        ring = [(x0, y1), (x0, y0), (x0 + bottom * side, y0), (x0 + top * side, y1)]
    else:
        ring = [(x0, y1), (x0, y0), (x1, y0), (x1, y1)]
    to_lonlat = pyproj.Transformer.from_crs(EPSG, 4326, always_xy=True)
    coords = [list(to_lonlat.transform(x, y)) for x, y in ring]
    return {"type": "Polygon", "coordinates": [[*coords, coords[0]]]}


def _bbox(geometry: dict[str, Any]) -> list[float]:
    lons, lats = zip(*geometry["coordinates"][0], strict=True)
    return [min(lons), min(lats), max(lons), max(lats)]


def _iso(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S.%f}Z"


# --- writing --------------------------------------------------------------------------------


def _write_cog(path: Path, data: npt.NDArray[Any], transform: Affine, categorical: bool) -> None:
    """One-band COG as Earth Search has them: DEFLATE, 256 px tiles, nodata 0, overviews."""
    options: dict[str, Any] = {"compress": "DEFLATE", "blocksize": 256}
    if categorical:
        options["overview_resampling"] = "NEAREST"
    else:
        options.update(predictor=2, overview_resampling="AVERAGE")
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs=f"EPSG:{EPSG}",
        transform=transform,
        nodata=0,
        **options,
    ) as dst:
        dst.write(data, 1)


def _asset(
    spec: ArchiveSpec, key: str, file: str, resolution: float, raster_band: dict[str, Any]
) -> dict[str, Any]:
    x0, y1 = _window_origin(spec.size)
    side = round(spec.size * RESOLUTION / resolution)
    asset: dict[str, Any] = {"href": f"./{file}.tif", "type": _COG_TYPE}
    if key in _BANDS:
        band = _BANDS[key]
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


def _item(
    spec: ArchiveSpec,
    acq: _Acquisition,
    product: _Product,
    scl: npt.NDArray[np.uint8],
    footprint: dict[str, Any],
) -> dict[str, Any]:
    """The item as Earth Search v1 writes it, with asset hrefs relative to its folder."""
    counts = np.bincount(scl.ravel(), minlength=12).astype(float)
    valid = max(float(counts[1:].sum()), 1.0)

    def pct(*codes: int) -> float:
        return round(100.0 * float(counts[list(codes)].sum()) / valid, 6)

    created = _iso(product.generation_time + timedelta(minutes=30))
    baseline = product.baseline
    sensed_start = acq.datetime - timedelta(minutes=7)
    properties: dict[str, Any] = {
        "created": created,
        "platform": acq.platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": pct(*scene.CLOUDY_SCL),
        "proj:code": f"EPSG:{EPSG}",
        "mgrs:utm_zone": 33,
        "mgrs:latitude_band": "T",
        "mgrs:grid_square": "WN",
        "grid:code": "MGRS-33TWN",
        "s2:nodata_pixel_percentage": round(100.0 * counts[0] / scl.size, 6),
        "s2:cloud_shadow_percentage": pct(scene.SCL_CLOUD_SHADOW),
        "s2:vegetation_percentage": pct(scene.SCL_VEGETATION),
        "s2:not_vegetated_percentage": pct(scene.SCL_NOT_VEGETATED),
        "s2:water_percentage": pct(scene.SCL_WATER),
        "s2:medium_proba_clouds_percentage": pct(scene.SCL_CLOUD_MEDIUM),
        "s2:high_proba_clouds_percentage": pct(scene.SCL_CLOUD_HIGH),
        "s2:thin_cirrus_percentage": pct(scene.SCL_THIN_CIRRUS),
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": baseline,
        "s2:product_uri": (
            f"{product.id[:3]}_MSIL2A_{sensed_start:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}"
            f"_R{acq.relative_orbit:03d}_T33TWN_{product.generation_time:%Y%m%dT%H%M%S}.SAFE"
        ),
        "s2:generation_time": _iso(product.generation_time),
        "datetime": _iso(acq.datetime),
        "s2:sequence": str(product.sequence),
        "earthsearch:boa_offset_applied": product.boa_offset_applied,
        "updated": created,
    }
    offset = -0.1 if _has_offset(baseline) else 0.0
    assets = {}
    for key, band in _BANDS.items():
        resolution = RESOLUTION if key in scene.BANDS_10M else 2 * RESOLUTION
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
    assets["scl"] = _asset(spec, "scl", _SCL_FILE, 2 * RESOLUTION, scl_band)
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": _EXTENSIONS,
        "id": product.id,
        "properties": properties,
        "geometry": footprint,
        "links": [_LICENSE_LINK],
        "assets": assets,
        "bbox": _bbox(footprint),
        "collection": COLLECTION_ID,
    }


class _TruthWriter:
    """The truth as a local Zarr group (DN on native grids), fed one date at a time in time
    order and written in blocks of dates: each Zarr write costs milliseconds of overhead."""

    def __init__(self, path: Path, spec: ArchiveSpec, plan: list[_Acquisition]) -> None:
        group = zarr.open_group(path, mode="w")
        group.attrs.update(
            {
                "time": [_iso(acq.datetime).rstrip("Z") for acq in plan],
                "item_ids": [acq.products[-1].id for acq in plan],
                "dropped_item_ids": [p.id for acq in plan for p in acq.products[:-1]],
            }
        )
        self.group = group
        # Dates per write and per chunk: a few MiB per chunk, the whole year at demo sizes.
        self.block = min(len(plan), max(1, _TRUTH_BLOCK_BYTES // (2 * spec.size**2)))
        self.arrays: dict[str, zarr.Array] = {}
        for name in (*scene.REFLECTANCE_BANDS, "scl"):
            side = spec.size if name in scene.BANDS_10M else spec.size // 2
            tile = min(side, 2048)
            self.arrays[name] = group.create_array(
                name,
                shape=(len(plan), side, side),
                chunks=(self.block, tile, tile),
                dtype="uint8" if name == "scl" else "uint16",
                fill_value=0,
                dimension_names=("time", "y", "x"),
            )
        self.pending: list[dict[str, npt.NDArray[Any]]] = []
        self.written = 0

    def write_landcover(self, landcover: npt.NDArray[np.uint8]) -> None:
        self.group.create_array("landcover", data=landcover, dimension_names=("y", "x"))

    def add(self, surface: dict[str, npt.NDArray[np.uint16]], scl: npt.NDArray[np.uint8]) -> None:
        """Queue the next date; written when a block is full or on :meth:`flush`."""
        self.pending.append({**surface, "scl": scl})
        if len(self.pending) == self.block:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        steps = slice(self.written, self.written + len(self.pending))
        for name, array in self.arrays.items():
            array[steps] = np.stack([date[name] for date in self.pending])
        self.written += len(self.pending)
        self.pending = []


def _clear(root: Path) -> None:
    """Remove what an earlier build left; the manifest first, so nothing looks complete."""
    (root / MANIFEST_NAME).unlink(missing_ok=True)
    for name in ("sentinel-s2-l2a-cogs", TRUTH_NAME):
        shutil.rmtree(root / name, ignore_errors=True)


def _write_product(
    pool: ThreadPoolExecutor,
    root: Path,
    product: _Product,
    recorded: dict[str, npt.NDArray[np.uint16]],
    scl: npt.NDArray[np.uint8],
    transforms: dict[int, Affine],
    item: dict[str, Any],
) -> list[str]:
    """Write one item's COGs and JSON; returns their paths relative to ``root``."""
    folder = root / product.rel_dir
    folder.mkdir(parents=True, exist_ok=True)
    rasters: list[tuple[str, npt.NDArray[Any], bool]] = [
        (_BANDS[band].file, dn, False) for band, dn in recorded.items()
    ]
    rasters.append((_SCL_FILE, scl, True))
    # GDAL compresses with the GIL released: write the assets side by side.
    futures = [
        pool.submit(_write_cog, folder / f"{name}.tif", data, transforms[data.shape[0]], flag)
        for name, data, flag in rasters
    ]
    for future in futures:
        future.result()
    (folder / f"{product.id}.json").write_text(json.dumps(item, indent=1))
    return [f"{product.rel_dir}/{name}.tif" for name, _, _ in rasters] + [
        f"{product.rel_dir}/{product.id}.json"
    ]


def _write(archive: Archive, progress: Callable[[int, int], None] | None) -> None:
    """Synthesise and write every item, date by date, then the truth and the manifest."""
    spec, root = archive.spec, archive.root
    plan = _plan(spec)
    total = sum(len(acq.products) for acq in plan)
    half = spec.size // 2
    x0, y1 = _window_origin(spec.size)
    transforms = {  # by raster height: 10 m and 20 m grids
        spec.size: Affine(RESOLUTION, 0.0, x0, 0.0, -RESOLUTION, y1),
        half: Affine(2 * RESOLUTION, 0.0, x0, 0.0, -2 * RESOLUTION, y1),
    }
    swath = scene.swath_valid((half, half), *_SWATH_EDGE)
    footprints = {partial: _footprint(spec, partial) for partial in (False, True)}
    land = scene.make_landscape(spec.size, np.random.default_rng([spec.seed, _STREAM_LAND]))
    truth = _TruthWriter(root / TRUTH_NAME, spec, plan)
    truth.write_landcover(land.landcover)

    files: list[str] = []
    done = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        for acq in plan:
            doy = acq.datetime.timetuple().tm_yday
            surface = scene.surface_dn(
                land, doy, np.random.default_rng([spec.seed, _STREAM_SURFACE, acq.index])
            )
            valid = swath if acq.partial else None
            sky = scene.make_sky(
                (half, half),
                acq.cloud_fraction,
                np.random.default_rng([spec.seed, _STREAM_SKY, acq.index]),
                valid,
            )
            scl = scene.scene_classification(land, doy, sky, valid)
            truth.add(surface, scl)
            for product in acq.products:
                recorded = scene.observe(surface, sky, valid, product.dn_add)
                item = _item(spec, acq, product, scl, footprints[acq.partial])
                files += _write_product(pool, root, product, recorded, scl, transforms, item)
                done += 1
                if progress is not None:
                    progress(done, total)
    truth.flush()

    manifest = {
        "format": ARCHIVE_FORMAT,
        "spec": asdict(spec),
        "items": [f"{p.rel_dir}/{p.id}.json" for acq in plan for p in acq.products],
        "files": [*files, f"{TRUTH_NAME}/zarr.json"],
    }
    # Written last and renamed into place: its presence means the archive is complete.
    partial_manifest = root / f".{MANIFEST_NAME}.partial"
    partial_manifest.write_text(json.dumps(manifest, indent=1))
    partial_manifest.replace(root / MANIFEST_NAME)


# --- the archive ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    """A built archive under ``root``; get one from :func:`build_archive`."""

    root: Path
    spec: ArchiveSpec

    @property
    def epsg(self) -> int:
        """EPSG code of the grid (UTM zone 33N)."""
        return EPSG

    @property
    def resolution(self) -> float:
        """Pixel size of the 10 m assets and of the truth grid, metres."""
        return RESOLUTION

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Window (x0, y0, x1, y1) in metres, EPSG:32633."""
        x0, y1 = _window_origin(self.spec.size)
        side = self.spec.size * RESOLUTION
        return (x0, y1 - side, x0 + side, y1)

    def bbox_lonlat(self) -> tuple[float, float, float, float]:
        """Area covered (west, south, east, north) in degrees, EPSG:4326."""
        to_lonlat = pyproj.Transformer.from_crs(EPSG, 4326, always_xy=True)
        west, south, east, north = to_lonlat.transform_bounds(*self.bounds, densify_pts=21)
        return (west, south, east, north)

    def _manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST_NAME
        try:
            manifest: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DataError(
                f"no complete archive at {self.root} ({path.name} unreadable: {err}); "
                "call build_archive() to (re)build it"
            ) from err
        return manifest

    def _is_complete(self) -> bool:
        try:
            manifest = self._manifest()
        except DataError:
            return False
        return (
            manifest.get("format") == ARCHIVE_FORMAT
            and manifest.get("spec") == asdict(self.spec)
            and all((self.root / f).is_file() for f in manifest.get("files", [None]))
        )

    def _stored_items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for rel in self._manifest()["items"]:
            yield rel, json.loads((self.root / rel).read_text())

    def item_dicts(self, base_url: str) -> list[dict[str, Any]]:
        """STAC items (Earth Search v1 layout) with asset hrefs under ``base_url``.

        ``base_url`` is where ``root`` is served, e.g. ``"http://127.0.0.1:8123"`` or
        ``"s3://demo-bucket/archive"``; an asset href is ``base_url`` + "/" + the file's path
        under ``root``. Sorted by datetime, then id.
        """
        if not isinstance(base_url, str) or not base_url.strip("/"):
            raise InputError(
                f"base_url must name where the archive root is served, e.g. "
                f"'http://127.0.0.1:8123' or 's3://bucket/archive'; got {base_url!r}"
            )
        base = base_url.rstrip("/")
        items = []
        for rel, item in self._stored_items():
            folder = rel.rsplit("/", 1)[0]  # the item JSON sits beside its assets
            for asset in item["assets"].values():
                asset["href"] = f"{base}/{folder}/{asset['href'].removeprefix('./')}"
            items.append(item)
        return sorted(items, key=lambda it: (it["properties"]["datetime"], it["id"]))

    def write_item_collection(self, path: Path, base_url: str) -> Path:
        """Write the items as a GeoJSON FeatureCollection (for ``rustac serve``); returns path."""
        collection = {"type": "FeatureCollection", "features": self.item_dicts(base_url)}
        path = Path(path)
        path.write_text(json.dumps(collection))
        return path

    def collection_dict(self) -> dict[str, Any]:
        """The ``sentinel-2-l2a`` STAC Collection, its extent taken from the items."""
        items = [item for _, item in self._stored_items()]
        times = sorted(item["properties"]["datetime"] for item in items)
        boxes = np.array([item["bbox"] for item in items])
        bbox = [*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist()]
        platforms = sorted({item["properties"]["platform"] for item in items})
        return {
            "type": "Collection",
            "id": COLLECTION_ID,
            "stac_version": "1.0.0",
            "stac_extensions": [],
            "title": "Sentinel-2 Level-2A (synthetic, cubehub demo)",
            "description": (
                "Synthetic Sentinel-2 L2A surface reflectance over MGRS tile 33TWN, laid out "
                "like Earth Search v1; built by cubehub.testing.archive."
            ),
            "license": "proprietary",
            "extent": {
                "spatial": {"bbox": [bbox]},
                "temporal": {"interval": [[times[0], times[-1]]]},
            },
            "summaries": {
                "platform": platforms,
                "constellation": ["sentinel-2"],
                "instruments": ["msi"],
                "gsd": [RESOLUTION, 2 * RESOLUTION],
            },
            "links": [],
        }

    def truth(self) -> xr.Dataset:
        """The cloud-free truth, lazily (dask) from the Zarr written at build time.

        Dims (time, y, x) on the 10 m grid, x/y pixel centres in EPSG:32633. Variables:
        ``blue green red nir swir16 swir22`` true surface reflectance (float64, multiples of
        1e-4, > 0; 20 m bands repeated 2 x 2), ``scl`` (uint8, the kept item's SCL repeated
        2 x 2), ``clear`` (SCL 4, 5 or 6: clear land or water inside the swath),
        ``landcover`` (y, x; codes in its ``flag_values``/``flag_meanings``). ``time`` holds one
        acquisition per solar day (UTC-naive); attrs ``item_ids`` name the item kept for each
        time and ``dropped_item_ids`` the duplicates it replaces. Call ``.load()`` on small
        archives.
        """
        self._manifest()  # a clear error if the build never finished
        group = zarr.open_group(self.root / TRUTH_NAME, mode="r")
        attrs = dict(group.attrs)
        x0, y1 = _window_origin(self.spec.size)
        centres = (np.arange(self.spec.size) + 0.5) * RESOLUTION
        coords = {
            "time": np.array(attrs["time"], dtype="datetime64[ns]"),
            "y": y1 - centres,
            "x": x0 + centres,
        }

        def on_10m(name: str) -> da.Array:
            array = da.from_zarr(group[name])
            if array.shape[-1] != self.spec.size:
                array = array.repeat(2, axis=-2).repeat(2, axis=-1)
            return array

        dims = ("time", "y", "x")
        data_vars: dict[str, Any] = {
            band: (
                dims,
                on_10m(band) / 10_000.0,
                {"units": "1", "long_name": f"{band} reflectance"},
            )
            for band in scene.REFLECTANCE_BANDS
        }
        scl = on_10m("scl")
        data_vars["scl"] = (dims, scl, {"long_name": "Sentinel-2 scene classification"})
        data_vars["clear"] = (dims, da.isin(scl, scene.CLEAR_SCL))
        data_vars["landcover"] = (
            ("y", "x"),
            on_10m("landcover"),
            {
                "flag_values": [int(c) for c in scene.LandCover],
                "flag_meanings": " ".join(c.name.lower() for c in scene.LandCover),
            },
        )
        return xr.Dataset(
            data_vars,
            coords=coords,
            attrs={"item_ids": attrs["item_ids"], "dropped_item_ids": attrs["dropped_item_ids"]},
        )


def build_archive(
    root: Path,
    spec: ArchiveSpec = ArchiveSpec(),
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Archive:
    """Build the synthetic archive into ``root``, or return it if already built.

    Idempotent: when ``root`` holds a complete archive (its manifest, written last, exists
    and names the same spec, and every file it lists is there) nothing is rewritten.
    Otherwise whatever an earlier build left is removed and the archive is written again.
    ``progress(done, total)`` is called after each item is written. Takes about 3 s for the
    default spec on 2 cores.
    """
    if not isinstance(spec, ArchiveSpec):
        raise InputError(f"spec must be an ArchiveSpec, got {type(spec).__name__}")
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InputError(f"archive root {root} exists and is not a directory; pass a folder")
    archive = Archive(root, spec)
    if archive._is_complete():
        return archive
    root.mkdir(parents=True, exist_ok=True)
    _clear(root)
    _write(archive, progress)
    return archive
