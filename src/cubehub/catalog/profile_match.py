"""Which collection profile (:mod:`cubehub.catalog.profiles`) an item, a collection id or a
job is read with.

Several providers publish the same collection id (``sentinel-2-l2a``, ``landsat-c2-l2``).
An item tells them apart by, in order: the host of its links (``self``, ``collection``,
``parent``, ``root``), the host of its asset hrefs (Planetary Computer's Azure Blob
accounts, the USGS bucket), ``earthsearch:`` properties, and which profile's asset keys it
has. Profiles that are still tied and read the item identically (the same
:attr:`~cubehub.catalog.profiles.CollectionProfile.layout`: Planetary Computer's and
Earth Search's ``landsat-c2-l2``, or a stactools item served from anywhere else) are not a
problem: the first in :data:`~cubehub.catalog.profiles.PROFILES` is taken. Only profiles
that would really read it differently make the caller choose (``profile=``; in a job file
``collection_profile:``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import pystac

from cubehub.catalog.fields import check_item
from cubehub.catalog.profiles import PROFILES, CollectionProfile
from cubehub.errors import InputError

__all__ = ["collection_profiles", "job_profile", "profile_for"]

_BY_NAME = {p.name: p for p in PROFILES}
#: How a caller names the profile, for error messages.
_CHOOSE = (
    "name the profile: normalize_items(items, profile=profile_for(NAME)), or in a job file "
    "collection_profile: NAME"
)


def _known() -> str:
    ids = sorted({cid for p in PROFILES for cid in p.collection_ids})
    return f"known collections: {', '.join(ids)} (profiles: {', '.join(_BY_NAME)})"


def _item_dict(item: pystac.Item | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(item, pystac.Item):
        # transform_hrefs=False: resolving hrefs would fetch the item's root over the network.
        return item.to_dict(transform_hrefs=False, include_self_link=True)
    return item


def _collection_id(item: Mapping[str, Any]) -> str | None:
    if item.get("collection"):
        return str(item["collection"])
    for link in item.get("links", []):
        if link.get("rel") == "collection" and link.get("href"):
            return str(link["href"]).rstrip("/").rsplit("/", 1)[-1].removesuffix(".json")
    return None


def _link_hosts(item: Mapping[str, Any]) -> set[str]:
    return {
        urlparse(str(link.get("href", ""))).hostname or ""
        for link in item.get("links", [])
        if link.get("rel") in ("self", "collection", "parent", "root")
    }


def _asset_hosts(item: Mapping[str, Any]) -> set[str]:
    return {urlparse(str(a.get("href", ""))).hostname or "" for a in item["assets"].values()}


def _on_hosts(hosts: Iterable[str], patterns: Sequence[str]) -> bool:
    """Any host equal to a pattern, or ending with one that starts with a dot."""
    return any(h == p or (p.startswith(".") and h.endswith(p)) for h in hosts for p in patterns)


def _layout_score(profile: CollectionProfile, asset_keys: Iterable[str]) -> int:
    keys = set(asset_keys)
    return sum(any(k in keys for k in spec.keys) for spec in (*profile.bands, profile.mask))


def _first_if_alike(candidates: Sequence[CollectionProfile]) -> CollectionProfile | None:
    """The first candidate when all read items identically (one layout), else None."""
    return candidates[0] if len({p.layout for p in candidates}) == 1 else None


def _pick_for_item(
    candidates: list[CollectionProfile], item: Mapping[str, Any]
) -> CollectionProfile:
    """Tell providers of one collection id apart (see the module docstring)."""
    by_host = [p for p in candidates if _link_hosts(item) & set(p.hosts)]
    if len(by_host) == 1:
        return by_host[0]
    by_files = [p for p in candidates if _on_hosts(_asset_hosts(item), p.asset_hosts)]
    if len(by_files) == 1:
        return by_files[0]
    if any(str(k).startswith("earthsearch:") for k in item["properties"]):
        by_props = [p for p in candidates if p.provider == "earth-search"]
        if len(by_props) == 1:
            return by_props[0]
    scores = {p.name: _layout_score(p, item["assets"]) for p in candidates}
    best = max(scores.values())
    winners = [p for p in candidates if scores[p.name] == best]
    alike = _first_if_alike(winners)
    if best == 0 or alike is None:
        why = (
            "it has none of their asset keys"
            if best == 0
            else f"{' and '.join(p.name for p in winners)} would read it differently"
        )
        raise InputError(
            f"item {item.get('id')!r} of collection {_collection_id(item)!r} matches no single "
            f"known layout: {why} (asset keys {sorted(item['assets'])[:12]}); candidates: "
            f"{', '.join(p.name for p in candidates)}; {_CHOOSE}"
        )
    return alike


def _pick_for_id(collection_id: str, stac_url: str | None) -> CollectionProfile:
    candidates = collection_profiles(collection_id, stac_url)
    alike = _first_if_alike(candidates)
    if alike is None:
        raise InputError(
            f"collection {collection_id!r} is served by several providers with different "
            f"layouts ({' or '.join(repr(p.name) for p in candidates)}); {_CHOOSE}, or give "
            "the STAC API it comes from (stac_url=)"
        )
    return alike


def profile_for(
    item_or_collection_id: pystac.Item | Mapping[str, Any] | str,
    *,
    stac_url: str | None = None,
) -> CollectionProfile:
    """The profile of an item (pystac or dict), a profile name, or a collection id.

    For an item, the collection id comes from ``collection`` or the ``collection`` link;
    where several providers share the id, the item's links, asset hrefs, ``earthsearch:``
    properties and asset keys decide (see the module docstring). For a bare collection id
    shared by several providers, ``stac_url`` (the STAC API searched) decides, and
    providers with one layout need nothing. Raises :class:`~cubehub.errors.InputError` for
    unknown collections (listing the known ones), for items that would be read differently
    by the candidates, and for legacy or malformed items (naming the item and the field).

    >>> profile_for("sentinel-2-l2a", stac_url="https://earth-search.aws.element84.com/v1").name
    'earth-search/sentinel-2-l2a'
    >>> profile_for("planetary-computer/sentinel-2-l2a").mask.keys
    ('SCL',)
    >>> profile_for("landsat-c2-l2").resolution_m  # two providers, one layout
    30
    """
    if isinstance(item_or_collection_id, str):
        if item_or_collection_id in _BY_NAME:
            return _BY_NAME[item_or_collection_id]
        return _pick_for_id(item_or_collection_id, stac_url)
    item = _item_dict(item_or_collection_id)
    check_item(item)
    collection_id = _collection_id(item)
    if collection_id is None:
        raise InputError(
            f"item {item.get('id')!r} names no collection (no 'collection' field or link); "
            f"{_CHOOSE}. {_known()}"
        )
    candidates = [p for p in PROFILES if collection_id in p.collection_ids]
    if not candidates:
        raise InputError(
            f"item {item.get('id')!r}: unknown collection {collection_id!r}; {_known()}"
        )
    return candidates[0] if len(candidates) == 1 else _pick_for_item(candidates, item)


def collection_profiles(collection_id: str, stac_url: str | None) -> list[CollectionProfile]:
    """The profiles of a collection id, only those of ``stac_url``'s host where it has any.

    >>> [p.name for p in collection_profiles("landsat-c2-l2", None)]
    ['planetary-computer/landsat-c2-l2', 'earth-search/landsat-c2-l2']
    """
    candidates = [p for p in PROFILES if collection_id in p.collection_ids]
    if not candidates:
        raise InputError(f"unknown collection {collection_id!r}; {_known()}")
    host = urlparse(stac_url).hostname if stac_url else None
    return [p for p in candidates if host in p.hosts] or candidates


def job_profile(
    collection: str, *, stac_url: str | None = None, name: str | None = None
) -> CollectionProfile:
    """The profile whose defaults a job of ``collection`` gets: the one named ``name``
    (a job's ``collection_profile``), else the first of :func:`collection_profiles` when
    they all give a job the same defaults (``sentinel-2-l2a`` from a STAC API that is not a
    known provider's: Earth Search's and Planetary Computer's layouts differ, their defaults
    do not). ``stac_url``: the job's STAC API URL (None for a static catalog).

    >>> job_profile("landsat-c2-l2").default_bands
    ('blue', 'green', 'red', 'nir08', 'swir16', 'swir22', 'lwir11')
    """
    if name is None:
        candidates = collection_profiles(collection, stac_url)
        if len({p.job_defaults for p in candidates}) > 1:
            raise InputError(
                f"collection {collection!r} is served by providers whose defaults differ "
                f"({', '.join(p.name for p in candidates)}); name one in collection_profile"
            )
        return candidates[0]
    if name not in _BY_NAME:
        raise InputError(f"unknown collection profile {name!r}; valid: {', '.join(_BY_NAME)}")
    profile = _BY_NAME[name]
    if collection not in profile.collection_ids:
        raise InputError(
            f"collection profile {name!r} reads collection(s) "
            f"{', '.join(profile.collection_ids)}, not {collection!r}; choose one of "
            f"{', '.join(p.name for p in PROFILES if collection in p.collection_ids) or 'none'}"
        )
    return profile
