"""The plan of the synthetic Landsat archive: its spec, overpasses, scenes and STAC items.

Which Landsat 5 TM, 7 ETM+, 8 and 9 OLI/TIRS overpasses one ODSE year has over the window
(each satellite on its 16-day repeat, WRS-2 paths 189 and 190 over it), which WRS-2 scenes
(path/row) each overpass gives, and each scene's STAC item in the Earth Search v1 or the
Planetary Computer ``landsat-c2-l2`` layout. Metadata only: the pixels come from
:mod:`cubehub.demo.landsat_scene`, the files are written by :mod:`cubehub.demo.landsat`.

The acquisition geometry, as Landsat has it:

* one satellite images path P+1 (west) 7 days after path P, so the sidelap of paths 189 and
  190 (the east of the window) is seen on other days than the rest: more observations
  there, each its own;
* consecutive rows of one path overlap along the track: path 190's rows 027 and 028 both
  cover the middle of the window, the same overpass twice on the same day, which must be
  one observation;
* Landsat 7 (and 9, which took its place in orbit) fly 8 days from Landsat 8 (and 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import numpy as np

from cubehub.demo.archive_io import COG_TYPE, bbox_of, iso, lonlat_polygon
from cubehub.demo.landsat_scene import SR_OFFSET, SR_SCALE, ST_OFFSET, ST_SCALE
from cubehub.errors import InputError

__all__ = [
    "COLLECTION_ID",
    "EPSG",
    "MAX_SIZE",
    "RESOLUTION",
    "LandsatSpec",
    "Layout",
    "Overpass",
    "Scene",
    "item_json",
    "plan_overpasses",
    "window_origin",
]

COLLECTION_ID = "landsat-c2-l2"
EPSG = 32633
RESOLUTION = 30.0
MAX_SIZE = 4096
Layout = Literal["earth-search", "planetary-computer"]
#: Upper-left corner of the window east of Graz: the native Landsat grid has its pixel
#: edges at 15 m modulo 30 m (pixel centres on multiples of 30 m).
_X0, _Y1 = 560_025.0, 5_230_005.0
#: First day of Landsat 7's scan-line corrector failure.
SLC_OFF_START = date(2003, 5, 31)
# Missions (Collection 2 Level-2 data): platform -> (first day, last day, 16-day phase).
# Landsat 9 took Landsat 7's slot, 8 days from Landsat 8; here Landsat 7 stops then.
_L9_START = date(2021, 10, 31)
_MISSIONS: dict[str, tuple[date, date, int]] = {
    "landsat-5": (date(1984, 3, 16), date(2011, 11, 18), 0),
    "landsat-7": (date(1999, 5, 28), _L9_START - timedelta(days=1), 8),
    "landsat-8": (date(2013, 3, 18), date(2100, 12, 31), 0),
    "landsat-9": (_L9_START, date(2100, 12, 31), 8),
}
#: A day on which the phase-0 satellite passes over path 189 (synthetic, not USGS's).
_PHASE_ANCHOR = date(2020, 12, 3)
#: Days after path 189 that the same satellite passes over path 190 (west of it).
_PATH_DELAY = {189: 0, 190: 7}
#: WRS-2 rows of each path that cover the window.
ROWS = {189: (27,), 190: (27, 28)}
_PASS_TIME = {189: time(9, 31, 10), 190: time(9, 37, 40)}
_ROW_SECONDS = 24  # one row later along the track
#: Path 189's swath edge crosses the window from this fraction of its width at the top to
#: that at the bottom; it sees the pixels east of the edge.
PATH_189_EDGE = (0.55, 0.35)
#: Fractions of the window height where path 190's row 027 ends and row 028 begins.
ROW_SPLIT = (0.6, 0.4)
#: SLC-off gap width (pixels) in the window for each path: it lies nearer the edge of
#: path 189's scenes than of path 190's.
SLC_GAP_PX = {189: 7.0, 190: 3.0}

STREAM_SCHEDULE, STREAM_LAND, STREAM_SURFACE, STREAM_SKY = 1, 2, 3, 4


@dataclass(frozen=True)
class LandsatSpec:
    """What to synthesise. Equal specs give identical pixels, items and truth."""

    size: int = 64
    """Pixels per side at 30 m; a multiple of 16 up to 4096. 64 (1.92 km) builds in seconds."""
    year: int = 2021
    """ODSE year: acquisitions from (year-1)-12-02 to year-12-01; 1985..2100. The satellites
    are those flying then: 2021 has Landsat 7 (SLC-off), 8 and 9; 2003 Landsat 5 and 7,
    whose scan-line corrector fails on 2003-05-31."""
    layout: Layout = "earth-search"
    """STAC item layout: ``earth-search`` (Earth Search v1, ``proj:code``, ``grid:code``) or
    ``planetary-computer`` (``proj:epsg``, Planetary Computer links)."""
    seed: int = 0
    """Seed of every random choice (land cover, clouds, noise); >= 0."""
    land_seed: int | None = None
    """Seed of the land cover alone (default: ``seed``). Archives of several years of one
    place share it and differ in ``seed``: the same land under other clouds and noise, as
    :func:`cubehub.demo.start_demo` builds them (``collection="landsat-c2-l2"``)."""

    def __post_init__(self) -> None:
        for name in ("size", "year", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"LandsatSpec.{name} must be an integer, got {value!r}")
        if self.size <= 0 or self.size % 16 or self.size > MAX_SIZE:
            lower = max(16, min(MAX_SIZE, self.size // 16 * 16))
            raise InputError(
                f"LandsatSpec.size must be a positive multiple of 16 up to {MAX_SIZE} "
                f"(pixels per side at 30 m), got {self.size}; use e.g. {lower}"
            )
        if not 1985 <= self.year <= 2100:
            raise InputError(
                f"LandsatSpec.year must be between 1985 and 2100 (Landsat 5 onwards), "
                f"got {self.year}"
            )
        if self.layout not in ("earth-search", "planetary-computer"):
            raise InputError(
                f"LandsatSpec.layout must be 'earth-search' or 'planetary-computer', "
                f"got {self.layout!r}"
            )
        if self.seed < 0 or (
            self.land_seed is not None
            and (not isinstance(self.land_seed, int) or self.land_seed < 0)
        ):
            raise InputError(
                f"LandsatSpec.seed and land_seed must be integers >= 0, got "
                f"{self.seed!r}, {self.land_seed!r}"
            )


@dataclass(frozen=True)
class Scene:
    """One WRS-2 scene of an overpass: one STAC item."""

    row: int
    id: str
    product_id: str
    sensed: datetime
    generated: datetime

    @property
    def path_row(self) -> str:
        return self.id.split("_")[2]


@dataclass(frozen=True)
class Overpass:
    """One satellite over one WRS-2 path on one day: the truth's time step."""

    index: int
    platform: str
    path: int
    day: date
    cloud_fraction: float
    snow_fraction: float
    #: SLC-off gap width in pixels; 0 before the failure and for other satellites.
    slc_gap_px: float
    slc_phase: float
    scenes: tuple[Scene, ...]

    @property
    def oli(self) -> bool:
        """Landsat 8/9 (OLI/TIRS, with a cirrus band) rather than TM / ETM+."""
        return self.platform in ("landsat-8", "landsat-9")

    @property
    def datetime(self) -> datetime:
        """The first scene's time: what a one-per-day cube labels the overpass with."""
        return self.scenes[0].sensed


_SENSOR = {  # platform -> (id code, USGS folder, instruments, thermal asset key)
    "landsat-5": ("LT05", "tm", ["tm"], "lwir"),
    "landsat-7": ("LE07", "etm", ["etm+"], "lwir"),
    "landsat-8": ("LC08", "oli-tirs", ["oli", "tirs"], "lwir11"),
    "landsat-9": ("LC09", "oli-tirs", ["oli", "tirs"], "lwir11"),
}


def thermal_key(platform: str) -> str:
    """The thermal band's asset key: ``lwir11`` (TIRS band 10) or ``lwir`` (TM/ETM+ band 6)."""
    return _SENSOR[platform][3]


def rel_dir(platform: str, scene: Scene) -> str:
    """Folder of a scene's files under the archive root, as in the ``usgs-landsat`` bucket."""
    path, row = scene.path_row[:3], scene.path_row[3:]
    day = scene.sensed
    return f"collection02/level-2/standard/{_SENSOR[platform][1]}/{day.year}/{path}/{row}/{scene.product_id}"


def plan_overpasses(spec: LandsatSpec) -> list[Overpass]:
    """Every overpass of the ODSE year over the window, in time order, with its scenes."""
    rng = np.random.default_rng([spec.seed, STREAM_SCHEDULE])
    start, end = date(spec.year - 1, 12, 2), date(spec.year, 12, 1)
    passes: list[tuple[date, str, int]] = []
    for platform, (first, last, phase) in _MISSIONS.items():
        for path, delay in _PATH_DELAY.items():
            offset = (phase + delay - (start - _PHASE_ANCHOR).days) % 16
            day = start + timedelta(days=offset)
            while day <= end:
                if first <= day <= last:
                    passes.append((day, platform, path))
                day += timedelta(days=16)
    passes.sort()
    n = len(passes)
    # Cloud cover as in the Sentinel-2 archive: ~30 % clear, ~15 % nearly overcast; the
    # first overpass of each month clear, so that every season keeps clean observations.
    draw, overcast, partly = rng.random(n), rng.uniform(0.7, 0.85, n), rng.uniform(0.05, 0.6, n)
    cover = np.where(draw < 0.3, 0.0, np.where(draw < 0.45, overcast, partly))
    snow_draw, snow_share = rng.random(n), rng.uniform(0.2, 0.9, n)
    phases, jitter = rng.random(n), rng.integers(0, 8_000, n)
    plan = []
    for i, (day, platform, path) in enumerate(passes):
        if i == 0 or day.month != passes[i - 1][0].month:
            cover[i] = 0.0
        winter = day.month in (12, 1, 2)
        snow = float(snow_share[i]) if winter and snow_draw[i] < 0.5 else 0.0
        slc_off = platform == "landsat-7" and day >= SLC_OFF_START
        sensed = datetime.combine(day, _PASS_TIME[path], tzinfo=UTC) + timedelta(
            milliseconds=int(jitter[i])
        )
        generated = datetime.combine(day + timedelta(days=9), time(16, 22, 27), tzinfo=UTC)
        code = _SENSOR[platform][0]
        scenes = []
        for k, row in enumerate(ROWS[path]):
            path_row = f"{path:03d}{row:03d}"
            scenes.append(
                Scene(
                    row,
                    f"{code}_L2SP_{path_row}_{day:%Y%m%d}_02_T1",
                    f"{code}_L2SP_{path_row}_{day:%Y%m%d}_{generated:%Y%m%d}_02_T1",
                    sensed + timedelta(seconds=_ROW_SECONDS * k),
                    generated,
                )
            )
        plan.append(
            Overpass(
                i,
                platform,
                path,
                day,
                float(cover[i]),
                snow,
                SLC_GAP_PX[path] if slc_off else 0.0,
                float(phases[i]),
                tuple(scenes),
            )
        )
    return plan


def window_origin() -> tuple[float, float]:
    """Upper-left corner (x0, y1) of the window, on the native Landsat grid."""
    return _X0, _Y1


def footprint_ring(spec: LandsatSpec, path: int, row: int) -> list[tuple[float, float]]:
    """Corners (x, y) of the part of the window a scene covers (see the module doc)."""
    x0, y1 = window_origin()
    side = spec.size * RESOLUTION
    x1, y0 = x0 + side, y1 - side
    if path == 189:
        top, bottom = PATH_189_EDGE
        return [(x0 + top * side, y1), (x0 + bottom * side, y0), (x1, y0), (x1, y1)]
    ends, begins = ROW_SPLIT
    north, south = (y1, y1 - ends * side) if row == ROWS[190][0] else (y1 - begins * side, y0)
    return [(x0, north), (x0, south), (x1, south), (x1, north)]


# SR and ST bands: common name -> (OLI file, TM/ETM+ file, title)
_FILES = {
    "blue": ("SR_B2", "SR_B1", "Blue Band"),
    "green": ("SR_B3", "SR_B2", "Green Band"),
    "red": ("SR_B4", "SR_B3", "Red Band"),
    "nir08": ("SR_B5", "SR_B4", "Near Infrared Band 0.8"),
    "swir16": ("SR_B6", "SR_B5", "Short-wave Infrared Band 1.6"),
    "swir22": ("SR_B7", "SR_B7", "Short-wave Infrared Band 2.2"),
    "lwir11": ("ST_B10", "ST_B6", "Surface Temperature Band"),
}
_WAVELENGTH = {  # (centre, FWHM) micrometres, OLI / TM-ETM+
    "blue": ((0.48, 0.06), (0.49, 0.07)),
    "green": ((0.56, 0.06), (0.56, 0.08)),
    "red": ((0.65, 0.04), (0.66, 0.06)),
    "nir08": ((0.87, 0.03), (0.84, 0.13)),
    "swir16": ((1.61, 0.09), (1.65, 0.2)),
    "swir22": ((2.2, 0.19), (2.2, 0.28)),
    "lwir11": ((10.9, 0.59), (11.34, 2.05)),
}
_THERMAL_GSD = {"landsat-5": 120, "landsat-7": 60, "landsat-8": 100, "landsat-9": 100}


def file_name(platform: str, band: str) -> str:
    """The file of a band (``SR_B4``, ``ST_B10``, ``QA_PIXEL``) for this platform's sensor."""
    if band == "qa_pixel":
        return "QA_PIXEL"
    oli, older, _ = _FILES[band]
    return oli if _SENSOR[platform][0].startswith("LC") else older


def _assets(overpass: Overpass, scene: Scene) -> dict[str, Any]:
    code = _SENSOR[overpass.platform][0]
    prefix = {"LT05": "TM", "LE07": "ETM", "LC08": "OLI", "LC09": "OLI"}[code]
    assets: dict[str, Any] = {}
    for band, (_, _, title) in _FILES.items():
        file = file_name(overpass.platform, band)
        thermal = band == "lwir11"
        key = thermal_key(overpass.platform) if thermal else band
        centre, fwhm = _WAVELENGTH[band][0 if overpass.oli else 1]
        raster: dict[str, Any] = {"nodata": 0, "data_type": "uint16", "spatial_resolution": 30}
        if thermal:
            raster |= {"unit": "kelvin", "scale": ST_SCALE, "offset": ST_OFFSET}
        else:
            raster |= {"scale": SR_SCALE, "offset": SR_OFFSET}
        number = file.rsplit("B", 1)[1]
        asset: dict[str, Any] = {
            "href": f"./{scene.product_id}_{file}.TIF",
            "type": COG_TYPE,
            "title": title,
            "description": f"Collection 2 Level-2 {title} ({file}) "
            + ("Surface Temperature" if thermal else "Surface Reflectance"),
            "eo:bands": [
                {
                    "name": f"{'TIRS' if thermal and overpass.oli else prefix}_B{number}",
                    "common_name": key,
                    "center_wavelength": centre,
                    "full_width_half_max": fwhm,
                }
            ],
            "raster:bands": [raster],
            "roles": ["data", "temperature" if thermal else "reflectance"],
        }
        if thermal:
            asset["gsd"] = _THERMAL_GSD[overpass.platform]
        assets[key] = asset
    assets["qa_pixel"] = {
        "href": f"./{scene.product_id}_QA_PIXEL.TIF",
        "type": COG_TYPE,
        "title": "Pixel Quality Assessment Band",
        "description": "Collection 2 Level-1 Pixel Quality Assessment Band (QA_PIXEL)",
        "raster:bands": [
            {"nodata": 1, "data_type": "uint16", "spatial_resolution": 30, "unit": "bit index"}
        ],
        "roles": ["cloud", "cloud-shadow", "snow-ice", "water-mask"],
    }
    return assets


_ES_EXTENSIONS = [
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/landsat/v2.0.0/schema.json",
]
_PC_EXTENSIONS = [
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://landsat.usgs.gov/stac/landsat-extension/v1.1.1/schema.json",
]
_PC_API = "https://planetarycomputer.microsoft.com/api/stac/v1"
_USGS_API = "https://landsatlook.usgs.gov/stac-server/collections"


def item_json(
    spec: LandsatSpec, overpass: Overpass, scene: Scene, cloud_cover: float
) -> dict[str, Any]:
    """The scene's STAC item in ``spec.layout``, asset hrefs relative to its folder."""
    code = _SENSOR[overpass.platform][0]
    path_row = scene.path_row
    geometry = lonlat_polygon(footprint_ring(spec, overpass.path, scene.row), EPSG)
    x0, y1 = window_origin()
    doy = scene.sensed.timetuple().tm_yday
    props: dict[str, Any] = {
        "datetime": iso(scene.sensed),
        "platform": overpass.platform,
        "instruments": _SENSOR[overpass.platform][2],
        "created": iso(scene.generated + timedelta(days=1)),
        "gsd": 30,
        "description": "Landsat Collection 2 Level-2",
        "eo:cloud_cover": cloud_cover,
        "view:off_nadir": 0,
        "view:sun_elevation": round(42.0 - 23.0 * np.cos(2 * np.pi * (doy + 10) / 365), 6),
        "view:sun_azimuth": 155.0,
        "proj:shape": [spec.size, spec.size],
        "proj:transform": [RESOLUTION, 0.0, x0, 0.0, -RESOLUTION, y1],
        "landsat:cloud_cover_land": cloud_cover,
        "landsat:wrs_type": "2",
        "landsat:wrs_path": path_row[:3],
        "landsat:wrs_row": path_row[3:],
        "landsat:collection_category": "T1",
        "landsat:collection_number": "02",
        "landsat:correction": "L2SP",
        "landsat:scene_id": f"L{code[1]}{code[3]}{path_row}{scene.sensed:%Y%j}LGN00",
    }
    links: list[dict[str, Any]] = [
        {"rel": "cite-as", "href": "https://doi.org/10.5066/P9OGBGM6"},
        {"rel": "via", "href": f"{_USGS_API}/landsat-c2l2-sr/items/{scene.product_id}_SR"},
        {"rel": "via", "href": f"{_USGS_API}/landsat-c2l2-st/items/{scene.product_id}_ST"},
    ]
    if spec.layout == "earth-search":
        extensions = _ES_EXTENSIONS
        props |= {
            "proj:code": f"EPSG:{EPSG}",
            "grid:code": f"WRS2-{path_row}",
            "landsat:product_generated": iso(scene.generated),
            "earthsearch:payload_id": "usgs-landsat-c2l2/workflow-landsat-to-stac/"
            f"{scene.product_id}_SR",
            "updated": iso(scene.generated + timedelta(days=1)),
        }
    else:
        extensions = _PC_EXTENSIONS
        props["proj:epsg"] = EPSG
        links += [  # the Planetary Computer's own, as its stored items carry them
            {"rel": rel, "href": f"{_PC_API}/collections/{COLLECTION_ID}"}
            for rel in ("collection", "parent")
        ]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": extensions,
        "id": scene.id,
        "properties": props,
        "geometry": geometry,
        "links": links,
        "assets": _assets(overpass, scene),
        "bbox": bbox_of(geometry),
        "collection": COLLECTION_ID,
    }
