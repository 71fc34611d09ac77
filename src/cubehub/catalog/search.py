"""STAC item search: one function for every STAC API, with checks before any request.

Filters the server cannot apply are applied here, so a job means the same on every API:
``max_cloud_cover`` goes to the server as a CQL2 filter when it conforms to the filter
extension, as a ``query`` when it conforms to the query extension, and is always checked
again on the client (``rustac serve`` conforms to neither and ignores them silently).

Static sources — an ItemCollection (GeoJSON FeatureCollection) or a Catalog/Collection JSON,
at a local path, ``http(s)://`` or ``s3://`` URL — are read whole and filtered here with the
same rules, so a job can move between an API and a bucket without changing meaning.

Requests to an API have timeouts and retries (:mod:`cubehub.catalog.stac_api`): one that
accepts connections and never answers fails, naming its URL, instead of hanging.
``env:NAME`` as the source reads the API URL from environment variable ``NAME``, so a URL
with credentials (``user:password@``) can come from a Kubernetes Secret and never be
written into a job file or manifest.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pystac
import shapely
import shapely.geometry

from cubehub.catalog import cql2
from cubehub.catalog.search_input import (
    BBox,
    check_bbox,
    check_cloud_cover,
    format_range,
    lat_lon_hint,
    parse_datetime_range,
    read_aoi,
    swapped,
)
from cubehub.catalog.stac_api import RequestPolicy, api_items, check_collections, open_api
from cubehub.credentials import redact
from cubehub.errors import DataError, EmptySearchError, InputError

#: Named shortcuts for common public STAC APIs.
ENDPOINTS: dict[str, str] = {
    "earth-search": "https://earth-search.aws.element84.com/v1",
    "planetary-computer": "https://planetarycomputer.microsoft.com/api/stac/v1",
    "cdse": "https://stac.dataspace.copernicus.eu/v1",
    "usgs": "https://landsatlook.usgs.gov/stac-server",
}


_STATIC_SUFFIXES = (".json", ".geojson")
#: A source given as ``env:NAME`` is read from environment variable ``NAME``.
ENV_PREFIX = "env:"


def resolve_source(source: str) -> str:
    """The source itself, or for ``env:NAME`` the value of environment variable ``NAME``."""
    if not source.startswith(ENV_PREFIX):
        return source
    name = source.removeprefix(ENV_PREFIX)
    value = os.environ.get(name, "").strip()
    if not value:
        raise InputError(
            f"stac_api {source!r} names environment variable {name}, which is not set; set it to "
            "the STAC API URL (on Kubernetes, from a Secret given with --secret)"
        )
    return value


def resolve_endpoint(api: str) -> str:
    """A STAC API URL from a URL or one of the :data:`ENDPOINTS` shortcuts."""
    if api in ENDPOINTS:
        return ENDPOINTS[api]
    if api.startswith(("http://", "https://")):
        return api.rstrip("/")
    raise InputError(
        f"unknown STAC API {redact(api)!r}: give an http(s) URL, one of {', '.join(ENDPOINTS)}, or a "
        "static catalog / ItemCollection file (.json) as a path, http(s):// or s3:// URL"
    )


def is_static_source(source: str) -> bool:
    """True for a static catalog or ItemCollection file rather than a STAC API."""
    path = source.split("?", 1)[0]
    return path.endswith(_STATIC_SUFFIXES) or ("://" not in source and Path(source).exists())


def search_items(
    source: str,
    *,
    collections: str | Sequence[str],
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
        source: API URL, a shortcut from :data:`ENDPOINTS` (``earth-search``, ...), a
            static Catalog/Collection/ItemCollection JSON (local path, http(s)://, s3://), or
            ``env:NAME`` for either of these held by environment variable ``NAME``.
        collections: collection ids, e.g. ``["sentinel-2-l2a"]`` (one id may be a string).
        bbox: (west, south, east, north) in degrees; or give ``intersects``.
        intersects: the area of interest: a GeoJSON geometry, Feature or FeatureCollection
            (EPSG:4326), or a path/URL of a GeoJSON file.
        datetime: ISO 8601 date or range, see :func:`parse_datetime_range`.
        max_cloud_cover: keep items with ``eo:cloud_cover`` <= this, in percent (0..100; a
            fraction such as 0.8 is refused, see :func:`check_cloud_cover`).
        filter: a CQL2-JSON expression on item properties, e.g.
            ``{"op": "=", "args": [{"property": "platform"}, "sentinel-2b"]}``; sent to the
            API when it conforms to the filter extension, evaluated here otherwise (see
            :mod:`cubehub.catalog.cql2` for the operators).
        max_items: stop after this many items (default: all).
        page_size: items per page requested from the API, default 100.

    Raises:
        InputError: invalid arguments, or an unknown collection (lists those available).
        DataError: the API or catalog cannot be read (unreachable, no answer within the
            timeouts after the retries); the message names its URL.
        EmptySearchError: nothing matched.

    Example:
        >>> items = search_items("earth-search", collections=["sentinel-2-l2a"],
        ...                      bbox=(15.6, 47.0, 15.7, 47.1), datetime="2022",
        ...                      max_cloud_cover=50)  # doctest: +SKIP
    """
    collections = [collections] if isinstance(collections, str) else list(collections)
    if not collections or not all(isinstance(c, str) and c for c in collections):
        raise InputError(
            f"collections must be collection ids, e.g. collections=['sentinel-2-l2a'], got "
            f"{collections!r}"
        )
    box = check_bbox(bbox) if bbox is not None else None
    start, end = parse_datetime_range(datetime) if datetime else (None, None)
    now = dt.datetime.now(dt.UTC)
    if start is not None and start > now:
        raise InputError(
            f"datetime {datetime!r} starts after today ({now:%Y-%m-%d}): no scene exists yet; "
            "choose dates in the past"
        )
    max_cloud_cover = check_cloud_cover(max_cloud_cover)
    if max_items is not None and max_items < 1:
        raise InputError(f"max_items must be at least 1, got {max_items}")
    aoi = read_aoi(intersects) if intersects is not None else None
    if filter is not None:
        cql2.validate(filter)
    if max_cloud_cover is not None:
        cover = {"op": "<=", "args": [{"property": "eo:cloud_cover"}, max_cloud_cover]}
        filter = cover if filter is None else {"op": "and", "args": [filter, cover]}
    source = resolve_source(source)
    static = is_static_source(source)
    url = source if static else resolve_endpoint(source)

    def find(box: BBox | None, max_items: int | None) -> list[pystac.Item]:
        where = _Filter(box, aoi, start, end, filter, set(collections))
        if static:
            found = read_static_items(source)
            _check_static_collections(source, found, collections)
            found = [i for i in found if where.matches(i)]
        else:
            found = _search_api(
                url,
                collections,
                box,
                aoi,
                datetime,
                start,
                end,
                max_cloud_cover,
                page_size,
                where,
                max_items,
            )
        return found[:max_items] if max_items is not None else found

    items = find(box, max_items)
    if not items:
        hint = "widen the area or dates, or raise max_cloud_cover"
        # A box given latitude first still reads as a valid box, and finds nothing.
        if box is not None and lat_lon_hint(box) and find(swapped(box), 1):
            hint = (
                f"but items match bbox={swapped(box)}: the order is west, south, east, north "
                "(longitude first); swap latitude and longitude"
            )
        raise EmptySearchError(
            f"no items in {', '.join(collections)} at {redact(url)} match bbox={box}, "
            f"datetime={datetime}, max_cloud_cover={max_cloud_cover}; {hint}"
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
    from pystac_client.conformance import ConformanceClasses

    policy = RequestPolicy.from_settings()
    client = open_api(url, policy)
    check_collections(client, collections)
    search: dict[str, Any] = {
        "collections": list(collections),
        "bbox": box,
        "intersects": aoi,
        "datetime": format_range(start, end) if datetime else None,
        "limit": page_size,
    }
    if where.cql2 is not None and client.conforms_to(ConformanceClasses.FILTER):
        search["filter"] = where.cql2
        search["filter_lang"] = "cql2-json"
    elif max_cloud_cover is not None and client.conforms_to(ConformanceClasses.QUERY):
        search["query"] = {"eo:cloud_cover": {"lte": max_cloud_cover}}
    return api_items(client, url, policy, search, where.matches, max_items)


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
            self.cql2,
            {"id": item.id, "collection": item.collection_id, "properties": item.properties},
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
    """Every item of a static ItemCollection, Catalog or Collection (local, http(s), s3).

    Relative asset hrefs (the standard self-contained layout, ``./B04.tif`` beside the item)
    are made absolute against the item's own location, or the file's for an ItemCollection,
    so the pixels can be read from anywhere.
    """
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
        items = list(pystac.ItemCollection.from_dict(doc, preserve_dict=False))
    elif doc.get("type") == "Feature":
        items = [pystac.Item.from_dict(doc)]
    elif doc.get("type") in ("Catalog", "Collection"):
        catalog = pystac.read_file(source)
        assert isinstance(catalog, pystac.Catalog)
        items = list(catalog.get_items(recursive=True))
    else:
        raise InputError(
            f"{source} is not a STAC ItemCollection, Catalog or Collection (type {doc.get('type')!r})"
        )
    location = source if "://" in source else str(Path(source).absolute())
    for item in items:
        base = item.get_self_href() or location
        for asset in item.assets.values():
            asset.href = pystac.utils.make_absolute_href(asset.href, base)
    return items


def _check_static_collections(
    source: str, items: Sequence[pystac.Item], collections: Sequence[str]
) -> None:
    """Refuse collections that no item of a static catalog belongs to (items without a
    collection id match any, so they say nothing)."""
    present = {i.collection_id for i in items if i.collection_id is not None}
    unknown = [c for c in collections if c not in present]
    if present and unknown:
        raise InputError(
            f"unknown collection {', '.join(unknown)} in {redact(source)}; its items belong to: "
            f"{', '.join(sorted(present))}"
        )
