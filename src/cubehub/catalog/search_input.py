"""The search's inputs checked before any request: the area (a GeoJSON AOI or a lon/lat
box), the cloud-cover limit and the date range, each refused with the likely fix (a box
given latitude first, cloud cover as a fraction, a day-first date).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import shapely
import shapely.geometry

from cubehub.errors import InputError

#: (west, south, east, north) in degrees, EPSG:4326.
BBox = tuple[float, float, float, float]


def read_aoi(aoi: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON geometry (EPSG:4326) from a geometry, Feature, FeatureCollection or file."""
    if isinstance(aoi, (str, Path)):
        try:
            with fsspec.open(str(aoi), "r") as f:
                aoi = json.load(f)
        except FileNotFoundError:
            raise InputError(f"AOI file {aoi} does not exist") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"AOI file {aoi} is not valid GeoJSON: {exc}") from None
    assert isinstance(aoi, dict)
    kind = aoi.get("type")
    if kind == "FeatureCollection":
        geoms = [shapely.geometry.shape(f["geometry"]) for f in aoi.get("features", [])]
        if not geoms:
            raise InputError("the AOI FeatureCollection has no features")
        return dict(shapely.geometry.mapping(shapely.unary_union(geoms)))
    if kind == "Feature":
        return dict(aoi["geometry"])
    try:
        geometry = shapely.geometry.shape(aoi)
    except Exception:
        raise InputError(
            f"the AOI is not a GeoJSON geometry, Feature or FeatureCollection (type {kind!r})"
        ) from None
    if geometry.is_empty or not geometry.is_valid:
        raise InputError(
            "the AOI geometry is empty or invalid; check its coordinates (lon, lat order)"
        )
    return dict(shapely.geometry.mapping(geometry))


def check_bbox(bbox: Sequence[float]) -> BBox:
    """Validate a (west, south, east, north) box in degrees (EPSG:4326)."""
    if isinstance(bbox, str | bytes) or not isinstance(bbox, Sequence | np.ndarray):
        raise InputError(
            f"bbox must be 4 numbers [west, south, east, north] in degrees, got {bbox!r}"
        )
    if len(bbox) != 4:
        raise InputError(f"bbox must have 4 numbers (west, south, east, north), got {len(bbox)}")
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise InputError(
            f"bbox must be 4 numbers [west, south, east, north] in degrees, got {list(bbox)!r}"
        ) from None
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        raise InputError(
            f"bbox latitudes must lie within -90..90 degrees, got south={south}, north={north}"
            + lat_lon_hint((west, south, east, north))
        )
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise InputError(
            f"bbox longitudes must lie within -180..180 degrees, got west={west}, east={east}"
        )
    if south >= north:
        raise InputError(
            f"bbox south ({south}) must be less than north ({north}); the order is west, south, east, north"
        )
    if west >= east:
        raise InputError(
            f"bbox west ({west}) must be less than east ({east}); the order is west, south, east, "
            "north (split a box that crosses the antimeridian in two)"
        )
    return (west, south, east, north)


def swapped(box: BBox) -> BBox:
    """The box read the other way round: (south, west, north, east) -> (west, south, east, north)."""
    west, south, east, north = box
    return (south, west, north, east)


def lat_lon_hint(box: BBox) -> str:
    """A hint when ``box`` reads as a valid box with latitude and longitude swapped."""
    west, south, east, north = swapped(box)
    if -180 <= west < east <= 180 and -90 <= south < north <= 90:
        return (
            f"; if you wrote latitude before longitude, swap them: bbox=({west:g}, {south:g}, "
            f"{east:g}, {north:g}) is west, south, east, north"
        )
    return ""


def check_cloud_cover(max_cloud_cover: float | None) -> float | None:
    """Validate ``max_cloud_cover``, a percentage (0..100), not a fraction.

    0.8 read as a percentage keeps only scenes almost free of cloud, and is almost always
    meant as 80 %: values strictly between 0 and 1 are refused with that fix.
    """
    if max_cloud_cover is None:
        return None
    if isinstance(max_cloud_cover, bool) or not isinstance(max_cloud_cover, int | float):
        raise InputError(f"max_cloud_cover is a percentage within 0..100, got {max_cloud_cover!r}")
    if not 0 <= max_cloud_cover <= 100:
        raise InputError(f"max_cloud_cover is a percentage within 0..100, got {max_cloud_cover}")
    if 0 < max_cloud_cover < 1:
        raise InputError(
            f"max_cloud_cover is a percentage (0..100), and {max_cloud_cover:g} looks like a "
            f"fraction: did you mean {max_cloud_cover * 100:g}? (for scenes without any cloud, "
            "give 0)"
        )
    return float(max_cloud_cover)


#: ISO 8601 as STAC writes it: a year, a month, a day, or a day and a time.
_ISO_DATE = re.compile(
    r"^\d{4}(-\d{2}(-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?)?)?$"
)
#: Length of an ISO year, month and day -> its pandas period.
_PERIODS = {4: "Y", 7: "M", 10: "D"}
#: Day-first dates (02.12.2021, 2-12-2021): read month-first by most parsers.
_DAY_FIRST = re.compile(r"^(\d{1,2})[.\-](\d{1,2})[.\-](\d{4})$")


def parse_datetime_range(value: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Parse ``"2022"``, ``"2022-03"``, ``"2021-12-02/2022-12-01"`` or open ``"../2022-01-01"``.

    Returns UTC start and end (inclusive); a single date or partial date spans its period.
    Only ISO 8601 is read: ``"02.12.2021"`` is refused rather than guessed (it would read as
    12 February), with the ISO form of the day-first reading as the likely fix.
    """
    parts = value.split("/")
    if len(parts) > 2 or not value:
        raise InputError(
            f"datetime {value!r} must be one date or 'start/end' (ISO 8601, '..' for open)"
        )

    def parse(text: str, end: bool) -> dt.datetime | None:
        text = text.strip()
        if text in ("", ".."):
            return None
        if not _ISO_DATE.match(text):
            raise InputError(f"cannot read {text!r} in datetime {value!r}: {_iso_hint(text)}")
        try:
            if len(text) in _PERIODS:  # a year, month or day spans its whole period
                period = pd.Period(text, freq=_PERIODS[len(text)])
                stamp = period.end_time if end else period.start_time
            else:
                stamp = pd.Timestamp(text)
        except ValueError:
            raise InputError(
                f"cannot read {text!r} in datetime {value!r}: use ISO 8601 such as 2022-03-21"
            ) from None
        stamp = stamp.floor("us")
        utc = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        when: dt.datetime = utc.to_pydatetime()
        return when

    start = parse(parts[0], end=False)
    end = parse(parts[-1], end=True)
    if start is not None and end is not None and end < start:
        raise InputError(f"datetime range {value!r} ends before it starts; swap the two dates")
    return start, end


def _iso_hint(text: str) -> str:
    day_first = _DAY_FIRST.match(text)
    if day_first:
        day, month, year = (int(g) for g in day_first.groups())
        if 1 <= month <= 12 and 1 <= day <= 31:
            return (
                f"dates are ISO 8601, year first: write {year:04d}-{month:02d}-{day:02d} "
                f"(if you meant day {day} of month {month})"
            )
    return "use ISO 8601, year first, such as 2022-03-21 or 2021-12-02/2022-12-01"


def format_range(start: dt.datetime | None, end: dt.datetime | None) -> str:
    def fmt(t: dt.datetime | None) -> str:
        return ".." if t is None else t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    return f"{fmt(start)}/{fmt(end)}"
