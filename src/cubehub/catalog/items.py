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
   (:mod:`cubehub.catalog.profiles`); only the requested bands and the quality band are kept.
3. **Scale and offset** (:mod:`cubehub.catalog.scaling`): ``raster:bands[0]`` of every
   kept asset holds the ``scale``, ``offset`` and ``nodata`` that are physically right for
   the numbers stored in *its* file (reflectance = DN * scale + offset).
4. **Duplicates and solar days** (:mod:`cubehub.catalog.observations`): one observation
   per platform, tile and solar day; complementary tiles of the same overpass share one
   time label so the cube layer can mosaic them into one time step.

Normalised items are new :class:`pystac.Item` objects (the inputs are never changed), with
their ``root`` link removed: ``Item.to_dict()``, which stackstac calls, would otherwise
fetch the provider's root catalogue over the network. Provenance goes into ``cubehub:``
properties.
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pystac
from pyproj import CRS
from pyproj.exceptions import CRSError

from cubehub.catalog.fields import ItemDict, acquired, to_dict
from cubehub.catalog.observations import drop_duplicates, share_solar_day_time, tile
from cubehub.catalog.profile_match import profile_for
from cubehub.catalog.profiles import BandSpec, CollectionProfile
from cubehub.catalog.scaling import set_scaling
from cubehub.errors import InputError
from cubehub.grid import Anchor, AnchorOption, check_anchor, scene_anchor

__all__ = ["NormalizedItems", "normalize_items"]


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

    def common_epsg(self) -> int:
        """The EPSG code most items share: the default output CRS of a cube or a job.

        Raises:
            InputError: no item has an EPSG code (naming some of them, and ``epsg=``).
        """
        codes = Counter(
            int(i.properties["proj:epsg"]) for i in self.items if i.properties.get("proj:epsg")
        )
        if not codes:
            ids = ", ".join(i.id for i in self.items[:3]) + (" ..." if len(self.items) > 3 else "")
            raise InputError(
                f"no item has an EPSG code ({ids}: their CRS is given as WKT only); pass the output "
                "CRS explicitly, e.g. epsg=3035 (a job file: epsg: 3035)"
            )
        return codes.most_common(1)[0][0]

    def output_anchor(self, anchor: AnchorOption, epsg: int, resolution: float) -> Anchor:
        """``anchor`` resolved: ``"auto"`` becomes the pixel grid the items' assets in
        ``epsg`` share at ``resolution`` (their ``proj:transform``, see
        :func:`cubehub.grid.scene_anchor`), so a cube at their own CRS and resolution
        resamples nothing; ``"edge"`` where no asset is on such a grid or they disagree.
        Any other anchor is returned as it is."""
        if check_anchor(anchor) != "auto":
            return anchor  # type: ignore[return-value]  # not "auto": an Anchor
        return scene_anchor(asset_transforms(self.items, epsg), resolution) or "edge"


def asset_transforms(items: Sequence[pystac.Item], epsg: int) -> list[Sequence[float]]:
    """The ``proj:transform`` of every asset of ``items`` whose ``proj:epsg`` is ``epsg``."""
    return [
        asset.extra_fields["proj:transform"]
        for item in items
        for asset in item.assets.values()
        if asset.extra_fields.get("proj:epsg") == epsg and asset.extra_fields.get("proj:transform")
    ]


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
    plain = [to_dict(item) for item in items]
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
        set_scaling(item, profile)
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
        plain, duplicates = drop_duplicates(plain)
        share_solar_day_time(plain)
    plain.sort(key=lambda i: (acquired(i), tile(i), i["id"]))
    return NormalizedItems(
        items=tuple(pystac.Item.from_dict(i, migrate=False, preserve_dict=False) for i in plain),
        profile=profile,
        bands=data_bands,
        duplicates=duplicates,
        missing={k: v for k, v in missing.items() if k not in duplicates},
        without_epsg=tuple(i for i in without_epsg if i not in duplicates),
    )
