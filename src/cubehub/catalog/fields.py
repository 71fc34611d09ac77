"""Reading the fields of a STAC item that normalisation needs: plain copies, times, ids.

Shared by the rules of :mod:`cubehub.catalog.items`, :mod:`cubehub.catalog.scaling` and
:mod:`cubehub.catalog.observations`. Items here are plain GeoJSON dicts, checked once by
:func:`check_item` (through :func:`to_dict`) for the shape every rule relies on.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pystac

from cubehub.errors import InputError

__all__ = ["ItemDict", "acquired", "check_item", "first_match", "iso", "parse_time", "to_dict"]

ItemDict = dict[str, Any]

_MIGRATE = (
    "migrate it to STAC 1.x first (pystac.Item.from_dict(item) does, and cubehub takes the "
    "pystac item), or search the provider's current STAC API"
)


def _legacy(item: Mapping[str, Any]) -> str:
    """``"this is a STAC 0.7.0 item (...)..."`` for items older than STAC 0.9, else ``""``."""
    version = str(item.get("stac_version", ""))
    major_minor = tuple(int(v) for v in re.findall(r"\d+", version)[:2])
    if not major_minor or major_minor >= (0, 9):
        return ""
    return (
        f"this is a STAC {version} item (its assets' eo:bands are indexes into the item's "
        f"properties eo:bands, and eo:epsg stands for proj:epsg), which cubehub does not read; "
        f"{_MIGRATE}"
    )


def _shape_problem(item: Mapping[str, Any]) -> str | None:
    """The first field of ``item`` the rules cannot read, described; None if all is well."""
    for key in ("properties", "assets"):
        if not isinstance(item.get(key), Mapping):
            return f"{key} is {item.get(key)!r:.60}, not an object"
    for name, asset in item["assets"].items():
        if not isinstance(asset, Mapping) or not isinstance(asset.get("href"), str):
            return f"asset {name!r} is {asset!r:.60}, not an object with an href"
        for field in ("eo:bands", "raster:bands"):
            entries = asset.get(field)
            if entries is not None and not isinstance(entries, list):
                return f"asset {name!r} {field} is {entries!r:.60}, not a list"
            for k, entry in enumerate(entries or []):
                if not isinstance(entry, Mapping):
                    return f"asset {name!r} {field}[{k}] is {entry!r:.60}, not an object"
    return None


def check_item(item: Mapping[str, Any]) -> None:
    """Refuse an item the normalisation rules cannot read, naming the item and the field.

    Legacy items (``stac_version`` before 0.9, e.g. STAC 0.7, whose assets give
    ``eo:bands`` as integer indexes) and malformed ones (no ``properties`` or ``assets``
    object, an asset without ``href``, ``eo:bands`` / ``raster:bands`` entries that are not
    objects) raise :class:`~cubehub.errors.InputError`; a legacy item's message says how to
    migrate it.
    """
    problem = _shape_problem(item)
    legacy = _legacy(item)
    if problem is None and not legacy:
        return
    problem = problem or f"stac_version is {item.get('stac_version')!r}"
    raise InputError(
        f"item {item.get('id')!r}: {problem}; {legacy or 'the STAC item specification requires it'}"
    )


def to_dict(item: pystac.Item | Mapping[str, Any]) -> ItemDict:
    """A deep copy of an item as a plain dict, without touching the network; checked by
    :func:`check_item`."""
    if isinstance(item, pystac.Item):
        plain = copy.deepcopy(item.to_dict(transform_hrefs=False))
    elif isinstance(item, Mapping) and "properties" in item and "assets" in item:
        plain = copy.deepcopy(dict(item))
    else:
        raise InputError(
            f"expected STAC items (pystac.Item or GeoJSON Feature dicts), got {type(item).__name__}"
        )
    check_item(plain)
    return plain


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"cannot read the time {value!r}: STAC times are ISO 8601") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def acquired(item: Mapping[str, Any]) -> datetime:
    props = item["properties"]
    when = parse_time(props.get("datetime")) or parse_time(props.get("start_datetime"))
    if when is None:
        raise InputError(f"item {item.get('id')!r} has neither datetime nor start_datetime")
    return when.astimezone(UTC)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def first_match(pattern: str, *texts: Any) -> str | None:
    for text in texts:
        if text and (match := re.search(pattern, str(text))):
            return match.group(1)
    return None
