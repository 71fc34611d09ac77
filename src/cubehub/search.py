"""STAC item search: one function for every STAC API, with checks before any request.

Filters the server cannot apply are applied here, so a job means the same on every API:
``max_cloud_cover`` goes to the server as a CQL2 filter when it conforms to the filter
extension, as a ``query`` when it conforms to the query extension, and is always checked
again on the client (``rustac serve`` conforms to neither and ignores them silently).

Static sources — an ItemCollection (GeoJSON FeatureCollection) or a Catalog/Collection JSON,
at a local path, ``http(s)://`` or ``s3://`` URL — are read whole and filtered here with the
same rules, so a job can move between an API and a bucket without changing meaning.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pystac
import shapely
import shapely.geometry

from cubehub import cql2
from cubehub.errors import DataError, EmptySearchError, InputError

#: Named shortcuts for common public STAC APIs.
ENDPOINTS: dict[str, str] = {
    "earth-search": "https://earth-search.aws.element84.com/v1",
    "planetary-computer": "https://planetarycomputer.microsoft.com/api/stac/v1",
    "cdse": "https://stac.dataspace.copernicus.eu/v1",
    "usgs": "https://landsatlook.usgs.gov/stac-server",
}

BBox = tuple[float, float, float, float]


_STATIC_SUFFIXES = (".json", ".geojson")


def resolve_endpoint(api: str) -> str:
    """A STAC API URL from a URL or one of the :data:`ENDPOINTS` shortcuts."""
    if api in ENDPOINTS:
        return ENDPOINTS[api]
    if api.startswith(("http://", "https://")):
        return api.rstrip("/")
    raise InputError(
        f"unknown STAC API {api!r}: give an http(s) URL, one of {', '.join(ENDPOINTS)}, or a "
        "static catalog / ItemCollection file (.json) as a path, http(s):// or s3:// URL"
    )


def is_static_source(source: str) -> bool:
    """True for a static catalog or ItemCollection file rather than a STAC API."""
    path = source.split("?", 1)[0]
    return path.endswith(_STATIC_SUFFIXES) or ("://" not in source and Path(source).exists())


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
        return shapely.geometry.mapping(shapely.unary_union(geoms))
    if kind == "Feature":
        return dict(aoi["geometry"])
    try:
        geometry = shapely.geometry.shape(aoi)
    except Exception:
        raise InputError(f"the AOI is not a GeoJSON geometry, Feature or FeatureCollection (type {kind!r})") from None
    if geometry.is_empty or not geometry.is_valid:
        raise InputError("the AOI geometry is empty or invalid; check its coordinates (lon, lat order)")
    return shapely.geometry.mapping(geometry)


def check_bbox(bbox: Sequence[float]) -> BBox:
    """Validate a (west, south, east, north) box in degrees (EPSG:4326)."""
    if len(bbox) != 4:
        raise InputError(f"bbox must have 4 numbers (west, south, east, north), got {len(bbox)}")
    west, south, east, north = (float(v) for v in bbox)
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        raise InputError(f"bbox latitudes must lie within -90..90 degrees, got south={south}, north={north}")
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise InputError(f"bbox longitudes must lie within -180..180 degrees, got west={west}, east={east}")
    if south >= north:
        raise InputError(f"bbox south ({south}) must be less than north ({north}); the order is west, south, east, north")
    if west >= east:
        raise InputError(
            f"bbox west ({west}) must be less than east ({east}); the order is west, south, east, "
            "north (split a box that crosses the antimeridian in two)"
        )
    return (west, south, east, north)


def parse_datetime_range(value: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Parse ``"2022"``, ``"2022-03"``, ``"2021-12-02/2022-12-01"`` or open ``"../2022-01-01"``.

    Returns UTC start and end (inclusive); a single date or partial date spans its period.
    """
    parts = value.split("/")
    if len(parts) > 2 or not value:
        raise InputError(f"datetime {value!r} must be one date or 'start/end' (ISO 8601, '..' for open)")

    def parse(text: str, end: bool) -> dt.datetime | None:
        if text in ("", ".."):
            return None
        try:
            period = pd.Period(text)
        except ValueError:
            raise InputError(f"cannot read {text!r} in datetime {value!r}: use ISO 8601 such as 2022-03-21") from None
        stamp = (period.end_time if end else period.start_time).floor("us")
        return stamp.tz_localize("UTC").to_pydatetime() if stamp.tzinfo is None else stamp.to_pydatetime()

    start = parse(parts[0], end=False)
    end = parse(parts[-1], end=True)
    if start is not None and end is not None and end < start:
        raise InputError(f"datetime range {value!r} ends before it starts; swap the two dates")
    return start, end


def _format_range(start: dt.datetime | None, end: dt.datetime | None) -> str:
    def fmt(t: dt.datetime | None) -> str:
        return ".." if t is None else t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    return f"{fmt(start)}/{fmt(end)}"


def search_items(
    source: str,
    *,
    collections: Sequence[str],
    bbox: Sequence[float] | None = None,
    intersects: str | Path | dict[str, Any] | None = None,
    datetime: str | None = None,
    max_cloud_cover: float | None = None,
    filter: dict[str, Any] | None = None,
    max_items: int | None = None,
    page_size: int = 100,
) -> list[pystac.Item]:
    """Search a STAC API or a static catalog and return the matching items, sorted by time.

    Args:
        source: API URL, a shortcut from :data:`ENDPOINTS` (``earth-search``, ...), or a
            static Catalog/Collection/ItemCollection JSON (local path, http(s)://, s3://).
        collections: collection ids, e.g. ``["sentinel-2-l2a"]``.
        bbox: (west, south, east, north) in degrees; or give ``intersects``.
        intersects: the area of interest: a GeoJSON geometry, Feature or FeatureCollection
            (EPSG:4326), or a path/URL of a GeoJSON file.
        datetime: ISO 8601 date or range, see :func:`parse_datetime_range`.
        max_cloud_cover: keep items with ``eo:cloud_cover`` <= this, in percent (0..100).
        filter: a CQL2-JSON expression on item properties, e.g.
            ``{"op": "=", "args": [{"property": "platform"}, "sentinel-2b"]}``; sent to the
            API when it conforms to the filter extension, evaluated here otherwise (see
            :mod:`cubehub.cql2` for the operators).
        max_items: stop after this many items (default: all).
        page_size: items per page requested from the API, default 100.

    Raises:
        InputError: invalid arguments, or an unknown collection (lists those available).
        EmptySearchError: nothing matched.

    Example:
        >>> items = search_items("earth-search", collections=["sentinel-2-l2a"],
        ...                      bbox=(15.6, 47.0, 15.7, 47.1), datetime="2022",
        ...                      max_cloud_cover=50)  # doctest: +SKIP
    """
    if not collections:
        raise InputError("give at least one collection id, e.g. collections=['sentinel-2-l2a']")
    box = check_bbox(bbox) if bbox is not None else None
    start, end = parse_datetime_range(datetime) if datetime else (None, None)
    if max_cloud_cover is not None and not 0 <= max_cloud_cover <= 100:
        raise InputError(f"max_cloud_cover is a percentage within 0..100, got {max_cloud_cover}")
    if max_items is not None and max_items < 1:
        raise InputError(f"max_items must be at least 1, got {max_items}")
    aoi = read_aoi(intersects) if intersects is not None else None
    if filter is not None:
        cql2.validate(filter)
    if max_cloud_cover is not None:
        cover = {"op": "<=", "args": [{"property": "eo:cloud_cover"}, max_cloud_cover]}
        filter = cover if filter is None else {"op": "and", "args": [filter, cover]}
    where = _Filter(box, aoi, start, end, filter, set(collections))
    if is_static_source(source):
        items = [i for i in read_static_items(source) if where.matches(i)]
        url = source
    else:
        url = resolve_endpoint(source)
        items = _search_api(url, collections, box, aoi, datetime, start, end, max_cloud_cover, page_size, where, max_items)
    items = items[:max_items] if max_items is not None else items
    if not items:
        raise EmptySearchError(
            f"no items in {', '.join(collections)} at {url} match bbox={box}, datetime={datetime}, "
            f"max_cloud_cover={max_cloud_cover}; widen the area or dates, or raise max_cloud_cover"
        )
    items.sort(key=lambda i: (i.datetime or dt.datetime.min.replace(tzinfo=dt.UTC), i.id))
    return items


def _search_api(
    url: str,
    collections: Sequence[str],
    box: BBox | None,
    aoi: dict[str, Any] | None,
    datetime: str | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    max_cloud_cover: float | None,
    page_size: int,
    where: _Filter,
    max_items: int | None,
) -> list[pystac.Item]:
    # Imported here: pystac-client loads jsonschema, a second of start-up for every command.
    import pystac_client
    from pystac_client.conformance import ConformanceClasses

    try:
        client = pystac_client.Client.open(url)
    except Exception as exc:  # pystac-client raises several unrelated types here
        raise DataError(f"cannot open the STAC API at {url}: {exc}") from exc
    _check_collections(client, collections)

    kwargs: dict[str, Any] = {
        "collections": list(collections),
        "bbox": box,
        "intersects": aoi,
        "datetime": _format_range(start, end) if datetime else None,
        "limit": page_size,
    }
    if where.cql2 is not None and client.conforms_to(ConformanceClasses.FILTER):
        kwargs["filter"] = where.cql2
        kwargs["filter_lang"] = "cql2-json"
    elif max_cloud_cover is not None and client.conforms_to(ConformanceClasses.QUERY):
        kwargs["query"] = {"eo:cloud_cover": {"lte": max_cloud_cover}}
    with warnings.catch_warnings():
        # rustac and others omit numberMatched; that is not a problem worth a warning.
        warnings.filterwarnings("ignore", message="numberMatched or context.matched")
        found = client.search(**kwargs).items()
        items = []
        for item in found:
            if not where.matches(item):  # what the server could not (or did not) filter
                continue
            items.append(item)
            if max_items is not None and len(items) >= max_items:
                break
    return items


@dataclass(frozen=True)
class _Filter:
    """The search's conditions, checked on the client for static sources and API results."""

    bbox: BBox | None
    aoi: dict[str, Any] | None
    start: dt.datetime | None
    end: dt.datetime | None
    cql2: dict[str, Any] | None
    collections: set[str]

    def matches(self, item: pystac.Item) -> bool:
        if item.collection_id is not None and item.collection_id not in self.collections:
            return False
        if self.cql2 is not None and not cql2.matches(
            self.cql2, {"id": item.id, "collection": item.collection_id, "properties": item.properties}
        ):
            return False
        when = item.datetime or item.common_metadata.start_datetime
        if when is not None:
            if self.start is not None and when < self.start:
                return False
            if self.end is not None and when > self.end:
                return False
        footprint = shapely.geometry.shape(item.geometry) if item.geometry else None
        if footprint is not None:
            if self.bbox is not None and not footprint.intersects(shapely.geometry.box(*self.bbox)):
                return False
            if self.aoi is not None and not footprint.intersects(shapely.geometry.shape(self.aoi)):
                return False
        return True


def read_static_items(source: str) -> list[pystac.Item]:
    """Every item of a static ItemCollection, Catalog or Collection (local, http(s), s3)."""
    try:
        with fsspec.open(source, "r") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise InputError(f"static catalog {source} does not exist") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{source} is not valid JSON: {exc}") from None
    except Exception as exc:
        raise DataError(f"cannot read {source}: {exc}; check the URL and credentials") from exc
    if doc.get("type") == "FeatureCollection":
        return list(pystac.ItemCollection.from_dict(doc, preserve_dict=False))
    if doc.get("type") == "Feature":
        return [pystac.Item.from_dict(doc)]
    if doc.get("type") in ("Catalog", "Collection"):
        catalog = pystac.read_file(source)
        assert isinstance(catalog, pystac.Catalog)
        return list(catalog.get_items(recursive=True))
    raise InputError(f"{source} is not a STAC ItemCollection, Catalog or Collection (type {doc.get('type')!r})")


def _check_collections(client: Any, collections: Sequence[str]) -> None:
    try:
        available = {c.id for c in client.get_collections()}
    except Exception:  # an API without /collections: let the search itself decide
        return
    unknown = [c for c in collections if c not in available]
    if unknown:
        raise InputError(
            f"unknown collection {', '.join(unknown)}; this API has: {', '.join(sorted(available))}"
        )
