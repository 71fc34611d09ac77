"""Per-collection profiles, as data: where each band lives and what its numbers mean.

The same Sentinel-2 or Landsat product is published by several STAC providers with
different asset keys (Earth Search ``red`` vs Planetary Computer ``B04``), different
metadata (``raster:bands`` scale/offset or none) and different harmonisation of the
Sentinel-2 processing-baseline 04.00 offset. A :class:`CollectionProfile` records one
provider's layout; :func:`profile_for` recognises it from an item (collection id, links,
``earthsearch:`` properties, asset keys) or from a collection id.

cubehub's band names are Earth Search v1's common names (``coastal``, ``blue``,
``green``, ``red``, ``rededge1``..``rededge3``, ``nir``, ``nir08``, ``nir09``,
``swir16``, ``swir22``, ``lwir11``) plus ``scl`` / ``qa_pixel`` for the quality layers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias
from urllib.parse import urlparse

import pystac

from cubehub.compute.masks import MaskKind
from cubehub.errors import InputError

__all__ = [
    "PROFILES",
    "BandKind",
    "BandSpec",
    "CollectionProfile",
    "Sensor",
    "profile_for",
]

BandKind: TypeAlias = Literal["reflectance", "temperature", "mask"]
Sensor: TypeAlias = Literal["sentinel-2", "landsat"]


@dataclass(frozen=True)
class BandSpec:
    """One band of a collection: where it is stored and how its numbers are scaled."""

    name: str
    """cubehub's common name, e.g. ``"red"``."""
    keys: tuple[str, ...]
    """Asset keys that hold this band in this provider's items, preferred first."""
    resolution_m: float
    """Native pixel size in metres."""
    kind: BandKind = "reflectance"
    """``reflectance`` (unitless), ``temperature`` (kelvin) or ``mask`` (codes, never scaled)."""
    scale: float = 1.0
    """Default multiplier from stored number to physical value, used only when the item
    carries no ``raster:bands`` scale (1.0 for masks)."""
    offset: float = 0.0
    """Default additive offset, as for ``scale``. Sentinel-2 reflectance offsets depend on
    the processing baseline and are decided in :mod:`cubehub.items`, not here."""
    nodata: int = 0
    """Stored value meaning no data, used when the item does not say."""


@dataclass(frozen=True)
class CollectionProfile:
    """The layout of one provider's collection (see the module docstring)."""

    name: str
    """Unique profile name, ``provider/collection``, e.g. ``"earth-search/sentinel-2-l2a"``."""
    provider: str
    """``earth-search``, ``earth-search-v0``, ``planetary-computer`` or ``usgs``."""
    collection_ids: tuple[str, ...]
    """STAC collection ids this layout is published under."""
    hosts: tuple[str, ...]
    """Host names of the provider's STAC API, to tell providers of the same id apart."""
    sensor: Sensor
    """Which instrument family, deciding the scaling rules in :mod:`cubehub.items`."""
    bands: tuple[BandSpec, ...]
    """Data bands (reflectance, temperature), by common name."""
    mask: BandSpec
    """The per-pixel quality band (``scl`` or ``qa_pixel``)."""
    mask_kind: MaskKind
    """How to read ``mask``: SCL classes or QA_PIXEL bits (see :mod:`cubehub.compute.masks`)."""
    resolution_m: float
    """Native resolution of the finest reflectance bands, metres (10 for S2, 30 for Landsat)."""

    @property
    def band_names(self) -> tuple[str, ...]:
        """Every band name this profile knows: data bands, then the mask band."""
        return (*(b.name for b in self.bands), self.mask.name)

    def band(self, name: str) -> BandSpec:
        """The :class:`BandSpec` of one common band name (the mask band included)."""
        for spec in (*self.bands, self.mask):
            if spec.name == name:
                return spec
        raise InputError(
            f"unknown band {name!r} for {self.name}; valid names: {', '.join(self.band_names)}"
        )

    def check_bands(self, names: Iterable[str]) -> tuple[str, ...]:
        """``names`` without repeats, after checking each is a band of this profile."""
        if isinstance(names, str):
            names = [names]
        wanted = tuple(dict.fromkeys(names))
        unknown = [n for n in wanted if n not in self.band_names]
        if unknown:
            raise InputError(
                f"unknown band name(s) {', '.join(map(repr, unknown))} for {self.name}; "
                f"valid names: {', '.join(self.band_names)}"
            )
        if not wanted:
            raise InputError(f"no bands requested; choose from {', '.join(self.band_names)}")
        return wanted


# -- Sentinel-2 L2A -----------------------------------------------------------------------

_S2_BANDS: tuple[tuple[str, str, float], ...] = (
    # common name, band id (Planetary Computer / Earth Search v0 asset key), resolution m
    ("coastal", "B01", 60),
    ("blue", "B02", 10),
    ("green", "B03", 10),
    ("red", "B04", 10),
    ("rededge1", "B05", 20),
    ("rededge2", "B06", 20),
    ("rededge3", "B07", 20),
    ("nir", "B08", 10),
    ("nir08", "B8A", 20),
    ("nir09", "B09", 60),
    ("swir16", "B11", 20),
    ("swir22", "B12", 20),
)
# Sentinel-2 L2A reflectance is DN / 10000 (plus a baseline-dependent offset).
_S2_SCALE = 1e-4


def _s2_bands(by_band_id: bool) -> tuple[BandSpec, ...]:
    return tuple(
        BandSpec(name, (band_id if by_band_id else name,), res, scale=_S2_SCALE)
        for name, band_id, res in _S2_BANDS
    )


_S2_EARTH_SEARCH = _s2_bands(by_band_id=False)
_S2_BY_BAND_ID = _s2_bands(by_band_id=True)
_SCL_EARTH_SEARCH = BandSpec("scl", ("scl",), 20, kind="mask")
_SCL_BY_BAND_ID = BandSpec("scl", ("SCL",), 20, kind="mask")

_EARTH_SEARCH_HOSTS = ("earth-search.aws.element84.com",)
_PLANETARY_COMPUTER_HOSTS = ("planetarycomputer.microsoft.com",)
_USGS_HOSTS = ("landsatlook.usgs.gov",)

# -- Landsat Collection 2 Level-2 ---------------------------------------------------------

# USGS Collection 2 Level-2 surface reflectance: DN * 2.75e-5 - 0.2; surface temperature
# (ST_B10 / ST_B6) in kelvin: DN * 0.00341802 + 149.0.
_LS_SCALE, _LS_OFFSET = 2.75e-5, -0.2
_ST_SCALE, _ST_OFFSET = 0.00341802, 149.0


def _landsat_bands(keys: Mapping[str, tuple[str, ...]]) -> tuple[BandSpec, ...]:
    return tuple(
        BandSpec(name, k, 30, kind="temperature", scale=_ST_SCALE, offset=_ST_OFFSET)
        if name == "lwir11"
        else BandSpec(name, k, 30, scale=_LS_SCALE, offset=_LS_OFFSET)
        for name, k in keys.items()
    )


_LS_COMMON_KEYS: dict[str, tuple[str, ...]] = {
    "coastal": ("coastal",),
    "blue": ("blue",),
    "green": ("green",),
    "red": ("red",),
    "nir08": ("nir08",),
    "swir16": ("swir16",),
    "swir22": ("swir22",),
    # Landsat 7 items on the Planetary Computer call their thermal band "lwir".
    "lwir11": ("lwir11", "lwir"),
}
# Landsat 8 band numbering, as in the legacy Planetary Computer `landsat-8-c2-l2` items.
_LS8_USGS_KEYS: dict[str, tuple[str, ...]] = {
    "coastal": ("SR_B1",),
    "blue": ("SR_B2",),
    "green": ("SR_B3",),
    "red": ("SR_B4",),
    "nir08": ("SR_B5",),
    "swir16": ("SR_B6",),
    "swir22": ("SR_B7",),
    "lwir11": ("ST_B10",),
}
# QA_PIXEL nodata is the fill bit (value 1), as the providers' raster:bands say.
_QA_COMMON = BandSpec("qa_pixel", ("qa_pixel",), 30, kind="mask", nodata=1)
_QA_USGS = BandSpec("qa_pixel", ("QA_PIXEL",), 30, kind="mask", nodata=1)

#: Every known profile. Order matters only for error messages.
PROFILES: tuple[CollectionProfile, ...] = (
    CollectionProfile(
        name="earth-search/sentinel-2-l2a",
        provider="earth-search",
        collection_ids=("sentinel-2-l2a",),
        hosts=_EARTH_SEARCH_HOSTS,
        sensor="sentinel-2",
        bands=_S2_EARTH_SEARCH,
        mask=_SCL_EARTH_SEARCH,
        mask_kind="scl",
        resolution_m=10,
    ),
    CollectionProfile(
        # Collection 1 reprocessing: same asset layout as sentinel-2-l2a on Earth Search v1.
        name="earth-search/sentinel-2-c1-l2a",
        provider="earth-search",
        collection_ids=("sentinel-2-c1-l2a",),
        hosts=_EARTH_SEARCH_HOSTS,
        sensor="sentinel-2",
        bands=_S2_EARTH_SEARCH,
        mask=_SCL_EARTH_SEARCH,
        mask_kind="scl",
        resolution_m=10,
    ),
    CollectionProfile(
        # Earth Search v0 (legacy): band-id asset keys, no raster:bands, no s2: properties.
        name="earth-search-v0/sentinel-s2-l2a-cogs",
        provider="earth-search-v0",
        collection_ids=("sentinel-s2-l2a-cogs",),
        hosts=_EARTH_SEARCH_HOSTS,
        sensor="sentinel-2",
        bands=_S2_BY_BAND_ID,
        mask=_SCL_BY_BAND_ID,
        mask_kind="scl",
        resolution_m=10,
    ),
    CollectionProfile(
        name="planetary-computer/sentinel-2-l2a",
        provider="planetary-computer",
        collection_ids=("sentinel-2-l2a",),
        hosts=_PLANETARY_COMPUTER_HOSTS,
        sensor="sentinel-2",
        bands=_S2_BY_BAND_ID,
        mask=_SCL_BY_BAND_ID,
        mask_kind="scl",
        resolution_m=10,
    ),
    CollectionProfile(
        name="planetary-computer/landsat-c2-l2",
        provider="planetary-computer",
        collection_ids=("landsat-c2-l2",),
        hosts=_PLANETARY_COMPUTER_HOSTS,
        sensor="landsat",
        bands=_landsat_bands(_LS_COMMON_KEYS),
        mask=_QA_COMMON,
        mask_kind="qa_pixel",
        resolution_m=30,
    ),
    CollectionProfile(
        name="earth-search/landsat-c2-l2",
        provider="earth-search",
        collection_ids=("landsat-c2-l2",),
        hosts=_EARTH_SEARCH_HOSTS,
        sensor="landsat",
        bands=_landsat_bands(_LS_COMMON_KEYS),
        mask=_QA_COMMON,
        mask_kind="qa_pixel",
        resolution_m=30,
    ),
    CollectionProfile(
        # The USGS STAC server's surface-reflectance collection; it has no thermal band.
        name="usgs/landsat-c2l2-sr",
        provider="usgs",
        collection_ids=("landsat-c2l2-sr",),
        hosts=_USGS_HOSTS,
        sensor="landsat",
        bands=_landsat_bands({k: v for k, v in _LS_COMMON_KEYS.items() if k != "lwir11"}),
        mask=_QA_COMMON,
        mask_kind="qa_pixel",
        resolution_m=30,
    ),
    CollectionProfile(
        # Legacy Planetary Computer collection with USGS file-name keys (Landsat 8 only).
        name="planetary-computer/landsat-8-c2-l2",
        provider="planetary-computer",
        collection_ids=("landsat-8-c2-l2",),
        hosts=_PLANETARY_COMPUTER_HOSTS,
        sensor="landsat",
        bands=_landsat_bands(_LS8_USGS_KEYS),
        mask=_QA_USGS,
        mask_kind="qa_pixel",
        resolution_m=30,
    ),
)

_BY_NAME = {p.name: p for p in PROFILES}


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


def _layout_score(profile: CollectionProfile, asset_keys: Iterable[str]) -> int:
    keys = set(asset_keys)
    return sum(any(k in keys for k in spec.keys) for spec in (*profile.bands, profile.mask))


def _pick_for_item(
    candidates: list[CollectionProfile], item: Mapping[str, Any]
) -> CollectionProfile:
    """Tell providers of one collection id apart: API host, then provider properties, then
    which profile's asset keys the item actually has."""
    hosts = _link_hosts(item)
    by_host = [p for p in candidates if hosts & set(p.hosts)]
    if len(by_host) == 1:
        return by_host[0]
    if any(str(k).startswith("earthsearch:") for k in item.get("properties", {})):
        by_props = [p for p in candidates if p.provider == "earth-search"]
        if len(by_props) == 1:
            return by_props[0]
    scores = {p.name: _layout_score(p, item.get("assets", {})) for p in candidates}
    best = max(scores.values())
    winners = [p for p in candidates if scores[p.name] == best]
    if best == 0 or len(winners) > 1:
        raise InputError(
            f"item {item.get('id')!r} of collection {_collection_id(item)!r} matches no single "
            f"known layout (asset keys {sorted(item.get('assets', {}))[:12]}); candidates: "
            f"{', '.join(p.name for p in candidates)}. Pass profile= explicitly"
        )
    return winners[0]


def _pick_for_id(collection_id: str, stac_url: str | None) -> CollectionProfile:
    candidates = [p for p in PROFILES if collection_id in p.collection_ids]
    if not candidates:
        raise InputError(f"unknown collection {collection_id!r}; {_known()}")
    if stac_url is not None:
        host = urlparse(stac_url).hostname or ""
        candidates = [p for p in candidates if host in p.hosts] or candidates
    if len(candidates) > 1:
        raise InputError(
            f"collection {collection_id!r} is served by several providers with different "
            f"layouts; name the profile ({' or '.join(repr(p.name) for p in candidates)}) "
            "or pass stac_url= (the STAC API it comes from)"
        )
    return candidates[0]


def profile_for(
    item_or_collection_id: pystac.Item | Mapping[str, Any] | str,
    *,
    stac_url: str | None = None,
) -> CollectionProfile:
    """The profile of an item (pystac or dict), a profile name, or a collection id.

    For an item, the collection id comes from ``collection`` or the ``collection`` link;
    where several providers share the id (``sentinel-2-l2a``, ``landsat-c2-l2``), the
    host of the item's links, ``earthsearch:`` properties and finally its asset keys
    decide. For a bare collection id shared by several providers, ``stac_url`` (the STAC
    API searched) decides. Unknown collections raise :class:`~cubehub.errors.InputError`
    listing the known ones.

    >>> profile_for("sentinel-2-l2a", stac_url="https://earth-search.aws.element84.com/v1").name
    'earth-search/sentinel-2-l2a'
    >>> profile_for("planetary-computer/sentinel-2-l2a").mask.keys
    ('SCL',)
    """
    if isinstance(item_or_collection_id, str):
        if item_or_collection_id in _BY_NAME:
            return _BY_NAME[item_or_collection_id]
        return _pick_for_id(item_or_collection_id, stac_url)
    item = _item_dict(item_or_collection_id)
    collection_id = _collection_id(item)
    if collection_id is None:
        raise InputError(
            f"item {item.get('id')!r} names no collection (no 'collection' field or link); "
            f"pass profile= explicitly. {_known()}"
        )
    candidates = [p for p in PROFILES if collection_id in p.collection_ids]
    if not candidates:
        raise InputError(
            f"item {item.get('id')!r}: unknown collection {collection_id!r}; {_known()}"
        )
    return candidates[0] if len(candidates) == 1 else _pick_for_item(candidates, item)
