"""One observation per platform, tile and solar day (rule 4 of :mod:`cubehub.catalog.items`).

Reprocessings of the same acquisition are dropped for the latest (:func:`drop_duplicates`),
and the tiles of one overpass share one time label (:func:`share_solar_day_time`), so the
cube layer can mosaic them into one time step.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pystac

from cubehub.catalog.fields import ItemDict, acquired, first_match, iso, parse_time, to_dict
from cubehub.errors import InputError

__all__ = ["drop_duplicates", "share_solar_day_time", "solar_day", "tile"]


def _centroid_lon(item: Mapping[str, Any]) -> float:
    bbox = item.get("bbox")
    if not bbox:
        lons = [float(x) for x in _flatten_lons((item.get("geometry") or {}).get("coordinates"))]
        if not lons:
            raise InputError(
                f"item {item.get('id')!r} has neither bbox nor geometry; its solar day is unknown"
            )
        bbox = [min(lons), 0, max(lons), 0]
    west, east = float(bbox[0]), float(bbox[len(bbox) // 2])
    if west > east:  # crosses the antimeridian
        east += 360
    return (west + east) / 2 - (360 if (west + east) / 2 >= 180 else 0)


def _flatten_lons(coords: Any) -> Iterable[float]:
    if isinstance(coords, list | tuple) and coords and isinstance(coords[0], int | float):
        yield coords[0]
    elif isinstance(coords, list | tuple):
        for part in coords:
            yield from _flatten_lons(part)


def solar_day(item: pystac.Item | Mapping[str, Any]) -> date:
    """The local solar date of an acquisition: the date of UTC time + centroid lon / 15 h.

    Sun-synchronous overpasses happen in the local morning (about 10:30 for Sentinel-2 and
    Landsat), far from local midnight, so the tiles of one overpass share a solar day even
    where their UTC dates differ (east of about 157 E). A bbox that crosses the antimeridian
    is centred correctly (west > east).

    >>> solar_day({"properties": {"datetime": "2020-06-06T23:30:00Z"}, "bbox": [150, -1, 152, 1]})
    datetime.date(2020, 6, 7)
    """
    plain = to_dict(item) if isinstance(item, pystac.Item) else item
    offset = timedelta(hours=_centroid_lon(plain) / 15)
    return (acquired(plain) + offset).date()


def _platform(item: Mapping[str, Any]) -> str:
    props = item["properties"]
    text = str(props.get("platform") or props.get("constellation") or "")
    return re.sub(r"[^a-z0-9]", "", text.lower())


def tile(item: Mapping[str, Any]) -> str:
    """The fixed footprint an item belongs to: MGRS tile or Landsat WRS path/row."""
    props = item["properties"]
    if props.get("grid:code"):
        return str(props["grid:code"]).split("-", 1)[-1]
    if props.get("s2:mgrs_tile"):
        return str(props["s2:mgrs_tile"])
    if "mgrs:utm_zone" in props:
        return f"{props['mgrs:utm_zone']}{props.get('mgrs:latitude_band', '')}{props.get('mgrs:grid_square', '')}"
    if props.get("landsat:wrs_path") and props.get("landsat:wrs_row"):
        return f"{int(props['landsat:wrs_path']):03d}{int(props['landsat:wrs_row']):03d}"
    found = first_match(r"(?:^|_)T?(\d{1,2}[C-X][A-Z]{2})(?:_|$)", item.get("id"))
    found = found or first_match(r"^L[A-Z]\d{2}_L2\w{2}_(\d{6})_", item.get("id"))
    return found or str(item.get("id"))


def _relative_orbit(item: Mapping[str, Any]) -> int | None:
    """Sentinel-2 relative orbit: two passes over one tile on one day (high latitudes) are
    different observations, not reprocessings."""
    props = item["properties"]
    if props.get("sat:relative_orbit") is not None:
        return int(props["sat:relative_orbit"])
    found = first_match(
        r"_R(\d{3})_", props.get("s2:product_uri"), props.get("sentinel:product_id"), item.get("id")
    )
    return int(found) if found else None


def _processing_rank(item: Mapping[str, Any]) -> tuple[int, datetime, datetime, datetime]:
    """Later processings rank higher: sequence number (``_1_`` > ``_0_``), then
    generation, update and creation times."""
    props = item["properties"]
    sequence = props.get("s2:sequence", props.get("sentinel:sequence"))
    if sequence is None:
        sequence = first_match(r"_(\d+)_L2A$", item.get("id"))
    never = datetime.min.replace(tzinfo=UTC)
    return (
        int(sequence) if sequence is not None else -1,
        parse_time(props.get("s2:generation_time")) or never,
        parse_time(props.get("updated")) or never,
        parse_time(props.get("created")) or never,
    )


def drop_duplicates(items: list[ItemDict]) -> tuple[list[ItemDict], dict[str, str]]:
    """One item per (platform, solar day, tile, relative orbit): the latest processing.

    Reprocessings (``_0_``/``_1_`` on Earth Search, later generation times on the
    Planetary Computer) of the same tile on the same solar day are the same acquisition;
    counted twice they would skew every percentile. Items of *different* tiles on the
    same day are spatially complementary and all kept. Returns (kept, dropped -> kept id).
    """
    groups: dict[tuple[str, date, str, int | None], list[ItemDict]] = defaultdict(list)
    for item in items:
        key = (_platform(item), solar_day(item), tile(item), _relative_orbit(item))
        groups[key].append(item)
    kept: list[ItemDict] = []
    dropped: dict[str, str] = {}
    for group in groups.values():
        group.sort(key=lambda i: (_processing_rank(i), i["id"]), reverse=True)
        kept.append(group[0])
        dropped |= {other["id"]: group[0]["id"] for other in group[1:]}
    return kept, dropped


def share_solar_day_time(items: list[ItemDict]) -> None:
    """Give all items of one platform and solar day the same ``datetime``: the earliest
    acquisition time among them.

    stackstac makes one time step per distinct ``datetime``; identical labels let the cube
    layer merge the tiles of one overpass with ``stackstac.mosaic`` into one observation.
    The item's own time is kept in ``cubehub:acquired``; ``cubehub:solar_day`` and
    ``cubehub:tile`` record the grouping.
    """
    groups: dict[tuple[str, date], list[ItemDict]] = defaultdict(list)
    for item in items:
        groups[(_platform(item), solar_day(item))].append(item)
    for (_, day), group in groups.items():
        shared = min(acquired(i) for i in group)
        for item in group:
            props = item["properties"]
            props["cubehub:acquired"] = iso(acquired(item))
            props["cubehub:solar_day"] = day.isoformat()
            props["cubehub:tile"] = tile(item)
            props["datetime"] = iso(shared)
