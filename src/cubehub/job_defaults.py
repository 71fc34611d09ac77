"""A job's settings that its collection decides: defaults from the collection profile, and
the cloud-mask section.

:func:`with_profile_defaults` fills the bands, the resolution and the mask a job leaves out
from its collection profile (:mod:`cubehub.catalog.profiles`), so that one place holds
each collection's defaults; :class:`MaskSpec` is a job's ``mask`` section, read by the
profile's kind of quality band (Sentinel-2 SCL classes kept, Landsat QA_PIXEL bits
rejected). Used by :mod:`cubehub.jobspec`, which validates the whole job.

So ``make_job(stac_api=..., collection="landsat-c2-l2", bbox=..., years=..., output=...)``
is an ODSE Landsat job (seven bands at 30 m, QA_PIXEL mask), and a Sentinel-2 job gets six
bands at 10 m and the SCL mask. The profile is the one named by ``collection_profile``, else
the one of ``collection`` and the STAC API
(:func:`cubehub.catalog.profile_match.job_profile`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from cubehub.catalog.profile_match import collection_profiles, job_profile
from cubehub.catalog.profiles import CollectionProfile
from cubehub.catalog.search import ENDPOINTS
from cubehub.compute.masks import QA_PIXEL_BITS, SCL_CLASSES, MaskRule, SclMaskRule
from cubehub.errors import InputError

__all__ = ["MaskSpec", "api_url", "check_mask_fields", "describe_defaults", "with_profile_defaults"]


class MaskSpec(BaseModel):
    """Cloud masking by the collection's quality band, and buffers around clouds and shadows.

    Which observations are clear is the collection profile's rule
    (:attr:`cubehub.catalog.profiles.CollectionProfile.mask_rule`) unless the job changes
    it: Sentinel-2 by the SCL classes kept (``keep_classes``), Landsat by the QA_PIXEL bits
    that reject a pixel (``reject_bits``). A field of the other sensor's layer is refused,
    naming the one to use.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_classes: tuple[int, ...] | None = Field(
        None,
        description="Sentinel-2: SCL classes kept as clear; default the profile's "
        "(4, 5, 6, 7, 11: vegetation, bare, water, unclassified, snow)",
    )
    reject_bits: tuple[int, ...] | None = Field(
        None,
        description="Landsat: QA_PIXEL bits that reject a pixel when set; default the "
        "profile's (0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow)",
    )
    dilate_cloud_m: float = Field(0.0, ge=0, description="grow clouds by this distance, metres")
    dilate_shadow_m: float = Field(
        0.0, ge=0, description="grow cloud shadows by this distance, metres"
    )

    @model_serializer(mode="wrap")
    def _without_other_layer(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A job of one sensor says nothing of the other's layer (and stores made before
        # reject_bits existed keep matching their jobs).
        return {k: v for k, v in handler(self).items() if v is not None}

    def rule(self, profile: CollectionProfile) -> MaskRule:
        """The mask rule for ``profile``'s quality band: its own, changed by these fields.

        Raises:
            InputError: a field of the other kind of quality band (see :func:`check_mask_fields`).
        """
        check_mask_fields(self.model_dump(), profile)
        base = profile.mask_rule
        cloud, shadow = self.dilate_cloud_m, self.dilate_shadow_m
        if isinstance(base, SclMaskRule):
            keep = base.keep if self.keep_classes is None else self.keep_classes
            return replace(base, keep=keep, dilate_cloud_m=cloud, dilate_shadow_m=shadow)
        reject = base.reject_bits if self.reject_bits is None else self.reject_bits
        # Bits no longer rejected (cirrus kept, say) are no longer buffered either.
        return replace(
            base,
            reject_bits=reject,
            cloud_bits=tuple(b for b in base.cloud_bits if b in reject),
            shadow_bits=tuple(b for b in base.shadow_bits if b in reject),
            dilate_cloud_m=cloud,
            dilate_shadow_m=shadow,
        )


def check_mask_fields(mask: dict[str, Any], profile: CollectionProfile) -> None:
    """Refuse a ``mask`` field of the other kind of quality band, saying what to use."""
    rule = profile.mask_rule
    if isinstance(rule, SclMaskRule):
        wrong, right = "reject_bits", "keep_classes"
        what = "Sentinel-2 SCL classes, not Landsat QA_PIXEL bits"
        how = f"the SCL classes kept as clear ({SCL_CLASSES}; default {list(rule.keep)})"
    else:
        wrong, right = "keep_classes", "reject_bits"
        what = "Landsat QA_PIXEL bits, not Sentinel-2 SCL classes"
        how = (
            f"the QA_PIXEL bits that reject a pixel when set ({QA_PIXEL_BITS}; default "
            f"{list(rule.reject_bits)})"
        )
    if mask.get(wrong) is not None:
        raise InputError(
            f"mask.{wrong}: collection {', '.join(profile.collection_ids)} ({profile.name}) "
            f"masks clouds by its {what}; use mask.{right}, {how}"
        )


def api_url(stac_api: Any) -> str | None:
    """The STAC API URL of a job's ``stac_api``, None for a static catalog or ``env:``."""
    url = ENDPOINTS.get(str(stac_api), str(stac_api))
    return url if url.startswith(("http://", "https://")) and not _is_static(url) else None


def _is_static(url: str) -> bool:
    return url.split("?", 1)[0].endswith((".json", ".geojson"))


def with_profile_defaults(
    data: dict[str, Any], default_collection: str
) -> tuple[dict[str, Any], CollectionProfile, str]:
    """The job's raw fields with the collection profile's defaults filled in, the profile,
    and a line that says which fields came from where (:func:`describe_defaults`). A field
    set to None gets the default too."""
    data = dict(data)
    if "collections" in data:
        ids = data.pop("collections")
        ids = [ids] if isinstance(ids, str) else ids
        if "collection" in data or not isinstance(ids, list | tuple) or len(ids) != 1:
            raise InputError(
                f"collections: a job composites one collection; give one id (collection: "
                f"landsat-c2-l2, or collections: [landsat-c2-l2]), got {ids!r}"
                + (" and collection" if "collection" in data else "")
            )
        data["collection"] = ids[0]
    collection = data.setdefault("collection", default_collection)
    name = data.get("collection_profile")
    if not isinstance(collection, str) or not isinstance(name, str | None):
        raise InputError(
            f"collection must be a collection id (e.g. sentinel-2-l2a), got {collection!r}"
        )
    try:
        profile = job_profile(collection, stac_url=api_url(data.get("stac_api", "")), name=name)
    except InputError as exc:
        field = "collection_profile" if name is not None else "collection"
        raise InputError(f"{field}: {exc}") from None
    defaulted: list[str] = []
    if data.get("bands") is None:
        data["bands"] = profile.default_bands
        defaulted.append("bands")
    else:
        bands = (data["bands"],) if isinstance(data["bands"], str) else data["bands"]
        try:
            profile.check_bands(bands)
        except InputError as exc:
            raise InputError(f"bands: {exc} (leave bands out for the profile's own)") from None
    if data.get("resolution") is None:
        data["resolution"] = profile.resolution_m
        defaulted.append("resolution")
    mask = data.get("mask")
    if isinstance(mask, MaskSpec):
        mask = mask.model_dump()
    if mask is None or isinstance(mask, dict):
        mask = dict(mask or {})
        check_mask_fields(mask, profile)
        rule = profile.mask_rule
        own = "keep_classes" if isinstance(rule, SclMaskRule) else "reject_bits"
        if mask.get(own) is None:
            mask[own] = rule.keep if isinstance(rule, SclMaskRule) else rule.reject_bits
            defaulted.append(f"mask.{own}")
        data["mask"] = mask
    return data, profile, describe_defaults(data, profile, defaulted)


def describe_defaults(
    data: dict[str, Any], profile: CollectionProfile, defaulted: list[str]
) -> str:
    """``"bands, resolution, mask.reject_bits from profile ..."``: the fields ``defaulted``
    and the profile (with the collection's other profiles that give the same defaults)."""
    if data.get("collection_profile") is not None:
        source = f"profile {profile.name}"
    else:
        names = [
            p.name
            for p in collection_profiles(data["collection"], api_url(data.get("stac_api", "")))
        ]
        alike = f"; same defaults in {', '.join(names[1:])}" if len(names) > 1 else ""
        source = f"profile {names[0]} (collection {data['collection']}{alike})"
    if not defaulted:
        return f"none taken from {source}: the job sets bands, resolution and mask"
    return f"{', '.join(defaulted)} from {source}"
