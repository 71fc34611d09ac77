"""STAC item normalisation before stacking: one function per rule, composed by
:func:`normalize_items`.

Every provider publishes the same observations a little differently, and stackstac 0.5.1
trusts the metadata it is given. The rules below make the items say the same thing in the
same words, so the cube layer can stack them without knowing who served them:

1. **CRS** (:func:`_set_epsg`): integer ``proj:epsg`` on the item and on every kept asset,
   derived from ``proj:epsg``, ``proj:code`` or ``proj:wkt2``. stackstac 0.5.1 reads only
   ``proj:epsg`` (stackstac #262), while projection extension v2 items, and older items
   pystac migrates on read, carry ``proj:code`` instead.
2. **Band names** (:func:`_rename_bands`): assets renamed to cubehub's common names
   (:mod:`cubehub.collections`); only the requested bands and the quality band are kept.
3. **Scale and offset** (:func:`_set_scaling`): ``raster:bands[0]`` of every kept asset
   holds the ``scale``, ``offset`` and ``nodata`` that are physically right for the numbers
   stored in *its* file (reflectance = DN * scale + offset); see :func:`_s2_boa_offset`.
4. **Duplicates and solar days** (:func:`_deduplicate`, :func:`_share_solar_day_time`):
   one observation per platform, tile and solar day; complementary tiles of the same
   overpass share one time label so the cube layer can mosaic them into one time step.

Normalised items are new :class:`pystac.Item` objects (the inputs are never changed), with
their ``root`` link removed: ``Item.to_dict()``, which stackstac calls, would otherwise
fetch the provider's root catalogue over the network. Provenance goes into ``cubehub:``
properties.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pystac
from pyproj import CRS
from pyproj.exceptions import CRSError

from cubehub.collections import BandSpec, CollectionProfile, profile_for
from cubehub.errors import InputError

__all__ = ["NormalizedItems", "normalize_items", "solar_day"]

ItemDict = dict[str, Any]

#: First acquisition of Sentinel-2 processing baseline 04.00, which adds 1000 to L2A DNs.
S2_BASELINE_04_START = datetime(2022, 1, 25, tzinfo=UTC)
#: Sentinel-2 L2A reflectance offset, in reflectance units, once DNs carry +1000.
S2_BOA_OFFSET = -0.1


@dataclass(frozen=True)
class NormalizedItems:
    """The outcome of :func:`normalize_items`: items ready for ``stackstac.stack``."""

    items: tuple[pystac.Item, ...]
    """Normalised copies, sorted by (time, tile, id)."""
    profile: CollectionProfile
    """The collection layout the items were read with."""
    bands: tuple[str, ...]
    """Data bands kept, by common name, in the order requested."""
    duplicates: Mapping[str, str] = field(default_factory=dict)
    """Dropped item id -> id of the item kept in its place (a later processing)."""
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Item id -> requested bands (or the quality band) that item does not have."""
    without_epsg: tuple[str, ...] = ()
    """Ids of items whose CRS has no EPSG code (``proj:wkt2`` kept); stackstac then needs
    an explicit ``epsg=`` and places them by their lon/lat ``bbox``."""

    @property
    def assets(self) -> tuple[str, ...]:
        """Asset keys to stack: the data bands, then the quality band."""
        return (*self.bands, self.profile.mask.name)

    @property
    def epsg_codes(self) -> tuple[int, ...]:
        """The distinct EPSG codes of the items, ascending."""
        return tuple(sorted({i.properties["proj:epsg"] for i in self.items} - {None}))


# -- reading helpers ----------------------------------------------------------------------


def _to_dict(item: pystac.Item | Mapping[str, Any]) -> ItemDict:
    """A deep copy of an item as a plain dict, without touching the network."""
    if isinstance(item, pystac.Item):
        return copy.deepcopy(item.to_dict(transform_hrefs=False))
    if isinstance(item, Mapping) and "properties" in item and "assets" in item:
        return copy.deepcopy(dict(item))
    raise InputError(
        f"expected STAC items (pystac.Item or GeoJSON Feature dicts), got {type(item).__name__}"
    )


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"cannot read the time {value!r}: STAC times are ISO 8601") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _acquired(item: Mapping[str, Any]) -> datetime:
    props = item["properties"]
    when = _parse_time(props.get("datetime")) or _parse_time(props.get("start_datetime"))
    if when is None:
        raise InputError(f"item {item.get('id')!r} has neither datetime nor start_datetime")
    return when.astimezone(UTC)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _first_match(pattern: str, *texts: Any) -> str | None:
    for text in texts:
        if text and (match := re.search(pattern, str(text))):
            return match.group(1)
    return None


# -- rule 1: CRS --------------------------------------------------------------------------


def _epsg_from(fields: Mapping[str, Any]) -> int | None:
    """EPSG code from ``proj:epsg``, ``proj:code`` or ``proj:wkt2`` of one item or asset."""
    if isinstance(fields.get("proj:epsg"), int):
        return int(fields["proj:epsg"])
    code = fields.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":", 1)[1])
    for key, parse in (("proj:code", CRS.from_user_input), ("proj:wkt2", CRS.from_wkt)):
        if fields.get(key):
            try:
                return parse(fields[key]).to_epsg()
            except CRSError as err:
                raise InputError(f"cannot read {key} {str(fields[key])[:80]!r}: {err}") from err
    return None


def _set_epsg(item: ItemDict) -> bool:
    """Write integer ``proj:epsg`` on the item and each asset; False if none is known."""
    item_epsg = _epsg_from(item["properties"])
    item["properties"]["proj:epsg"] = item_epsg
    found = item_epsg is not None
    for asset in item["assets"].values():
        asset_epsg = _epsg_from(asset)
        if asset_epsg is None and asset.get("proj:wkt2") is None:
            asset_epsg = item_epsg
        asset["proj:epsg"] = asset_epsg
        found = found and asset_epsg is not None
    return found


# -- rule 2: band names -------------------------------------------------------------------


def _asset_key(item: Mapping[str, Any], spec: BandSpec) -> str | None:
    """The asset holding a band: the profile's keys first, then (data bands only) the one
    single-band asset whose ``eo:bands`` common name matches (e.g. USGS items keyed
    ``SR_B2``, whose band numbers differ between Landsat 7 and 8)."""
    assets = item["assets"]
    for key in spec.keys:
        if key in assets:
            return key
    if spec.kind == "mask":
        return None
    matches = [
        key
        for key, asset in assets.items()
        if len(asset.get("eo:bands") or []) == 1
        and asset["eo:bands"][0].get("common_name") == spec.name
        and not key.endswith("-jp2")
    ]
    return matches[0] if len(matches) == 1 else None


def _rename_bands(
    item: ItemDict, profile: CollectionProfile, names: Sequence[str]
) -> tuple[str, ...]:
    """Keep only the assets of ``names``, keyed by common name; return the names missing."""
    kept: dict[str, Any] = {}
    missing = []
    for name in names:
        key = _asset_key(item, profile.band(name))
        if key is None:
            missing.append(name)
        else:
            kept[name] = item["assets"][key]
    item["assets"] = kept
    return tuple(missing)


def _copy_item_grid(item: ItemDict) -> None:
    """Give each asset its own ``proj:shape``/``proj:transform`` when only the item has them
    (Landsat), so the grid of every band can be read in one place."""
    props = item["properties"]
    for asset in item["assets"].values():
        for key in ("proj:shape", "proj:transform"):
            if key not in asset and key in props:
                asset[key] = copy.deepcopy(props[key])


# -- rule 3: scale and offset -------------------------------------------------------------


def _processing_baseline(item: Mapping[str, Any]) -> tuple[int, int] | None:
    """Sentinel-2 processing baseline as (major, minor): from ``s2:processing_baseline``,
    else the ``_Nxxyy_`` part of the product id (Earth Search v0 ``sentinel:product_id``)."""
    props = item["properties"]
    text = props.get("s2:processing_baseline")
    if text and (match := re.fullmatch(r"(\d+)\.(\d+)", str(text).strip())):
        return int(match.group(1)), int(match.group(2))
    code = _first_match(
        r"_N(\d{4})_", props.get("s2:product_uri"), props.get("sentinel:product_id")
    )
    return (int(code[:2]), int(code[2:])) if code else None


@dataclass(frozen=True)
class _S2Offset:
    """The decision of :func:`_s2_boa_offset` for one item."""

    in_dn: bool
    """The stored reflectance DNs carry ESA's +1000 offset."""
    harmonised: bool
    """The provider already subtracted the offset from the files (metadata may disagree)."""
    reason: str
    """One line recorded on the item as ``cubehub:scaling``."""


def _s2_boa_offset(item: Mapping[str, Any]) -> _S2Offset:
    """Whether a Sentinel-2 L2A item's stored reflectance DNs carry the +1000 offset.

    This is the one place that decides the Sentinel-2 reflectance offset. From processing
    baseline 04.00 (acquisitions from 2022-01-25) ESA adds 1000 to every L2A reflectance
    DN (BOA_ADD_OFFSET = -1000), so reflectance = DN * 1e-4 - 0.1, and before it
    reflectance = DN * 1e-4. A composite across the 2022 boundary that ignores this is
    silently about 0.1 too bright after it.

    * Earth Search v1 items with ``earthsearch:boa_offset_applied: true`` hold COGs whose
      DNs Element 84 already harmonised (the 1000 subtracted), although their
      ``raster:bands`` still say offset -0.1: the right offset for them is 0.
    * Other Earth Search items say it correctly in ``raster:bands`` (-0.1 from 04.00,
      including ``boa_offset_applied: false`` ones), which is used as given.
    * Planetary Computer and Earth Search v0 items carry no scale/offset and leave the DNs
      as ESA made them (PlanetaryComputer #134): the offset follows the baseline.
    * With no baseline in the metadata, the acquisition date decides.
    """
    baseline = _processing_baseline(item)
    shown = f"{baseline[0]:02d}.{baseline[1]:02d}" if baseline else "unknown"
    if item["properties"].get("earthsearch:boa_offset_applied") is True:
        return _S2Offset(
            False, True, f"baseline {shown}; earthsearch:boa_offset_applied: DNs harmonised"
        )
    if baseline is not None:
        in_dn = baseline >= (4, 0)
        return _S2Offset(in_dn, False, f"baseline {shown} {'>=' if in_dn else '<'} 04.00")
    in_dn = _acquired(item) >= S2_BASELINE_04_START
    when = "on/after" if in_dn else "before"
    return _S2Offset(in_dn, False, f"baseline unknown; acquired {when} 2022-01-25")


def _band_scaling(
    spec: BandSpec, raster: Mapping[str, Any], s2: _S2Offset | None
) -> tuple[float, float, str]:
    """(scale, offset, source) of one data band; ``s2`` is given for Sentinel-2 items."""
    scale = float(raster.get("scale", spec.scale))
    if s2 is not None and spec.kind == "reflectance":
        if s2.harmonised:
            return scale, 0.0, s2.reason
        if "offset" in raster:
            return scale, float(raster["offset"]), f"raster:bands ({s2.reason})"
        return scale, S2_BOA_OFFSET if s2.in_dn else 0.0, s2.reason
    if "offset" in raster or "scale" in raster:
        return scale, float(raster.get("offset", spec.offset)), "raster:bands"
    return spec.scale, spec.offset, "profile default"


def _set_scaling(item: ItemDict, profile: CollectionProfile) -> None:
    """Write ``raster:bands[0]`` scale/offset/nodata on each kept asset (see module doc)."""
    s2 = _s2_boa_offset(item) if profile.sensor == "sentinel-2" else None
    sources = set()
    for name, asset in item["assets"].items():
        spec = profile.band(name)
        raster = dict((asset.get("raster:bands") or [{}])[0])
        raster["nodata"] = raster.get("nodata", spec.nodata)
        if spec.kind == "mask":
            # Quality codes are never scaled: an offset would turn classes into fractions.
            raster.pop("scale", None)
            raster.pop("offset", None)
        else:
            raster["scale"], raster["offset"], source = _band_scaling(spec, raster, s2)
            sources.add(source)
        asset["raster:bands"] = [raster]
    props = item["properties"]
    props["cubehub:scaling"] = "; ".join(sorted(sources)) or "no data bands"
    if s2 is not None:
        props["cubehub:boa_offset_in_dn"] = s2.in_dn


# -- rule 4: duplicates and solar days ----------------------------------------------------


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
    plain = _to_dict(item) if isinstance(item, pystac.Item) else item
    offset = timedelta(hours=_centroid_lon(plain) / 15)
    return (_acquired(plain) + offset).date()


def _platform(item: Mapping[str, Any]) -> str:
    props = item["properties"]
    text = str(props.get("platform") or props.get("constellation") or "")
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _tile(item: Mapping[str, Any]) -> str:
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
    found = _first_match(r"(?:^|_)T?(\d{1,2}[C-X][A-Z]{2})(?:_|$)", item.get("id"))
    found = found or _first_match(r"^L[A-Z]\d{2}_L2\w{2}_(\d{6})_", item.get("id"))
    return found or str(item.get("id"))


def _relative_orbit(item: Mapping[str, Any]) -> int | None:
    """Sentinel-2 relative orbit: two passes over one tile on one day (high latitudes) are
    different observations, not reprocessings."""
    props = item["properties"]
    if props.get("sat:relative_orbit") is not None:
        return int(props["sat:relative_orbit"])
    found = _first_match(
        r"_R(\d{3})_", props.get("s2:product_uri"), props.get("sentinel:product_id"), item.get("id")
    )
    return int(found) if found else None


def _processing_rank(item: Mapping[str, Any]) -> tuple[int, datetime, datetime, datetime]:
    """Later processings rank higher: sequence number (``_1_`` > ``_0_``), then
    generation, update and creation times."""
    props = item["properties"]
    sequence = props.get("s2:sequence", props.get("sentinel:sequence"))
    if sequence is None:
        sequence = _first_match(r"_(\d+)_L2A$", item.get("id"))
    never = datetime.min.replace(tzinfo=UTC)
    return (
        int(sequence) if sequence is not None else -1,
        _parse_time(props.get("s2:generation_time")) or never,
        _parse_time(props.get("updated")) or never,
        _parse_time(props.get("created")) or never,
    )


def _deduplicate(items: list[ItemDict]) -> tuple[list[ItemDict], dict[str, str]]:
    """One item per (platform, solar day, tile, relative orbit): the latest processing.

    Reprocessings (``_0_``/``_1_`` on Earth Search, later generation times on the
    Planetary Computer) of the same tile on the same solar day are the same acquisition;
    counted twice they would skew every percentile. Items of *different* tiles on the
    same day are spatially complementary and all kept. Returns (kept, dropped -> kept id).
    """
    groups: dict[tuple[str, date, str, int | None], list[ItemDict]] = defaultdict(list)
    for item in items:
        key = (_platform(item), solar_day(item), _tile(item), _relative_orbit(item))
        groups[key].append(item)
    kept: list[ItemDict] = []
    dropped: dict[str, str] = {}
    for group in groups.values():
        group.sort(key=lambda i: (_processing_rank(i), i["id"]), reverse=True)
        kept.append(group[0])
        dropped |= {other["id"]: group[0]["id"] for other in group[1:]}
    return kept, dropped


def _share_solar_day_time(items: list[ItemDict]) -> None:
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
        shared = min(_acquired(i) for i in group)
        for item in group:
            props = item["properties"]
            props["cubehub:acquired"] = _iso(_acquired(item))
            props["cubehub:solar_day"] = day.isoformat()
            props["cubehub:tile"] = _tile(item)
            props["datetime"] = _iso(shared)


# -- composition --------------------------------------------------------------------------


def _resolve_profile(items: list[ItemDict]) -> CollectionProfile:
    by_profile: dict[str, list[str]] = defaultdict(list)
    profiles = {}
    for item in items:
        profile = profile_for(item)
        profiles[profile.name] = profile
        by_profile[profile.name].append(item["id"])
    if len(profiles) > 1:
        detail = "; ".join(f"{name}: {ids[:3]}" for name, ids in by_profile.items())
        raise InputError(
            f"items come from {len(profiles)} different collection layouts ({detail}); "
            "normalise each collection separately"
        )
    return next(iter(profiles.values()))


def normalize_items(
    items: Iterable[pystac.Item | dict[str, Any]],
    bands: Sequence[str] | None = None,
    *,
    profile: CollectionProfile | None = None,
    deduplicate: bool = True,
) -> NormalizedItems:
    """Normalise STAC items of one collection for ``stackstac.stack`` (see module doc).

    ``bands``: common band names to keep (default: every data band of the profile); the
    quality band (``scl`` / ``qa_pixel``) is always kept. An unknown name raises
    :class:`~cubehub.errors.InputError` listing the valid ones; so does a band no item has.
    ``profile``: the collection layout; by default recognised from each item (all must
    agree). ``deduplicate``: drop reprocessed duplicates and give the tiles of one
    overpass a shared solar-day ``datetime`` (default); ``False`` keeps every item with
    its own time.

    Stack the result with ``stackstac.stack(result.items, assets=list(result.assets),
    rescale=False, ...)`` and apply each asset's ``raster:bands`` scale/offset yourself,
    or pass a float ``dtype`` with ``rescale=True``.
    """
    plain = [_to_dict(item) for item in items]
    if not plain:
        raise InputError("no items to normalise: the search returned nothing")
    profile = profile or _resolve_profile(plain)
    data_bands = tuple(
        b
        for b in profile.check_bands([s.name for s in profile.bands] if bands is None else bands)
        if b != profile.mask.name
    )
    names = (*data_bands, profile.mask.name)

    missing: dict[str, tuple[str, ...]] = {}
    without_epsg = []
    for item in plain:
        lacks = _rename_bands(item, profile, names)
        if lacks:
            missing[item["id"]] = lacks
        if not _set_epsg(item):
            without_epsg.append(item["id"])
        _copy_item_grid(item)
        _set_scaling(item, profile)
        item["properties"]["cubehub:profile"] = profile.name
        # A root link would be fetched by Item.to_dict(), which stackstac calls.
        item["links"] = [link for link in item.get("links", []) if link.get("rel") != "root"]

    absent = {
        n for n in names if len(missing) == len(plain) and all(n in m for m in missing.values())
    }
    if profile.mask.name in absent:
        raise InputError(
            f"none of the {len(plain)} items of {profile.name} has the quality band "
            f"{profile.mask.name!r} (asset {' or '.join(profile.mask.keys)}), which cloud "
            "masking needs; check that the search returns this collection's full items"
        )
    if bands is not None and absent:
        raise InputError(
            f"band(s) {', '.join(sorted(absent))} are in none of the {len(plain)} items of "
            f"{profile.name}; choose from the bands they have"
        )
    # By default keep every band some item has (Landsat 7 has no coastal band).
    data_bands = tuple(b for b in data_bands if b not in absent)
    missing = {
        k: lacks for k, v in missing.items() if (lacks := tuple(b for b in v if b not in absent))
    }

    duplicates: dict[str, str] = {}
    if deduplicate:
        plain, duplicates = _deduplicate(plain)
        _share_solar_day_time(plain)
    plain.sort(key=lambda i: (_acquired(i), _tile(i), i["id"]))
    return NormalizedItems(
        items=tuple(pystac.Item.from_dict(i, migrate=False, preserve_dict=False) for i in plain),
        profile=profile,
        bands=data_bands,
        duplicates=duplicates,
        missing={k: v for k, v in missing.items() if k not in duplicates},
        without_epsg=tuple(i for i in without_epsg if i not in duplicates),
    )
