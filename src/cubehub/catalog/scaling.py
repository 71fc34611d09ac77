"""Scale and offset of every band of a normalised item (rule 3 of
:mod:`cubehub.catalog.items`).

``raster:bands[0]`` of every kept asset is made to hold the ``scale``, ``offset`` and
``nodata`` that are physically right for the numbers stored in *its* file
(reflectance = DN * scale + offset); :func:`s2_boa_offset` is the one place that decides the
Sentinel-2 reflectance offset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cubehub.catalog.fields import ItemDict, acquired, first_match
from cubehub.catalog.profiles import BandSpec, CollectionProfile

__all__ = [
    "S2_BASELINE_04_START",
    "S2_BOA_OFFSET",
    "S2Offset",
    "lowest_offsets",
    "processing_baseline",
    "s2_boa_offset",
    "set_scaling",
]

#: First acquisition of Sentinel-2 processing baseline 04.00, which adds 1000 to L2A DNs.
S2_BASELINE_04_START = datetime(2022, 1, 25, tzinfo=UTC)
#: Sentinel-2 L2A reflectance offset, in reflectance units, once DNs carry +1000.
S2_BOA_OFFSET = -0.1


def processing_baseline(item: Mapping[str, Any]) -> tuple[int, int] | None:
    """Sentinel-2 processing baseline as (major, minor): from ``s2:processing_baseline``,
    else the ``_Nxxyy_`` part of the product id (Earth Search v0 ``sentinel:product_id``)."""
    props = item["properties"]
    text = props.get("s2:processing_baseline")
    if text and (match := re.fullmatch(r"(\d+)\.(\d+)", str(text).strip())):
        return int(match.group(1)), int(match.group(2))
    code = first_match(r"_N(\d{4})_", props.get("s2:product_uri"), props.get("sentinel:product_id"))
    return (int(code[:2]), int(code[2:])) if code else None


@dataclass(frozen=True)
class S2Offset:
    """The decision of :func:`s2_boa_offset` for one item."""

    in_dn: bool
    """The stored reflectance DNs carry ESA's +1000 offset."""
    harmonised: bool
    """The provider already subtracted the offset from the files (metadata may disagree)."""
    reason: str
    """One line recorded on the item as ``cubehub:scaling``."""


def s2_boa_offset(item: Mapping[str, Any]) -> S2Offset:
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
    baseline = processing_baseline(item)
    shown = f"{baseline[0]:02d}.{baseline[1]:02d}" if baseline else "unknown"
    if item["properties"].get("earthsearch:boa_offset_applied") is True:
        return S2Offset(
            False, True, f"baseline {shown}; earthsearch:boa_offset_applied: DNs harmonised"
        )
    if baseline is not None:
        in_dn = baseline >= (4, 0)
        return S2Offset(in_dn, False, f"baseline {shown} {'>=' if in_dn else '<'} 04.00")
    in_dn = acquired(item) >= S2_BASELINE_04_START
    when = "on/after" if in_dn else "before"
    return S2Offset(in_dn, False, f"baseline unknown; acquired {when} 2022-01-25")


def _band_scaling(
    spec: BandSpec, raster: Mapping[str, Any], s2: S2Offset | None
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


def set_scaling(item: ItemDict, profile: CollectionProfile) -> None:
    """Write ``raster:bands[0]`` scale/offset/nodata on each kept asset (see module doc)."""
    s2 = s2_boa_offset(item) if profile.sensor == "sentinel-2" else None
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


def lowest_offsets(profile: CollectionProfile) -> dict[str, float]:
    """Per band, the lowest offset any file of the collection may carry (reflectance units):
    a store encoded with it can take every year of the collection in one DN encoding.

    Sentinel-2 reflectance: :data:`S2_BOA_OFFSET`, ESA's encoding since processing baseline
    04.00, though older files say 0 (a 2021 store and its 2022 append then agree); other
    sensors' files keep one offset, and are not listed.

    >>> from cubehub.catalog.profiles import PROFILES
    >>> s2 = next(p for p in PROFILES if p.name == "earth-search/sentinel-2-l2a")
    >>> lowest_offsets(s2)["red"]
    -0.1
    """
    if profile.sensor != "sentinel-2":
        return {}
    return {band.name: S2_BOA_OFFSET for band in profile.bands if band.kind == "reflectance"}
