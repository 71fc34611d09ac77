"""File names of exported layers, with ODSE's fields in ODSE's order; pure (no I/O).

The ODSE/GeoHarmonizer Landsat product names each layer (a Cloud Optimized GeoTIFF) with
ten fields joined by ``_``, e.g.
``lcv_green_landsat.glad.ard_p50_30m_0..0cm_2019.06.25..2019.09.12_eumap_epsg3035_v1.1.tif``.
``cubehub export`` names its layers the same way (:data:`PATTERN`)::

    lcv_{variable}_{product}_{type}_{resolution}_0..0cm_{start}..{end}_{area}_epsg{code}_{version}.tif

======================  ===================  ==================================================
field                   example              where it comes from
======================  ===================  ==================================================
theme, variable         ``lcv_green``        ``lcv`` (ODSE's land cover / vegetation theme),
                                             then the store's variable, lower case, ``_`` ->
                                             ``.``: ``ndvi``, ``valid.count``,
                                             ``red.fill.source``
product                 ``landsat.c2.l2``    ``product=``; default the store's source STAC
                                             collection (``stac_collection``) with ``-``/``_``
                                             -> ``.``
type                    ``p50``              ``p`` + the percentile; ``n`` for the count of
                                             clear observations (``valid_count``), ``c`` for
                                             codes (``*_fill_source``), ``v`` for any other
                                             layer without a percentile
resolution              ``30m``              the store's pixel size, metres
depth                   ``0..0cm``           always: a surface product
season start..end       ``2019.06.25..       the season's first and last day (inclusive), the
                        2019.09.12``         store's ``season_start`` / ``season_end``
area                    ``eumap``            ``area=``; default the store's name (its last path
                                             part without ``.zarr``)
epsg                    ``epsg3035``         the store's CRS
version                 ``v1.1``             ``version=``; default ``v`` + major.minor of the
                                             cubehub that wrote the store (``v0.1``)
======================  ===================  ==================================================

No field holds ``_``, so ``name.split("_")`` gives the ten fields back
(:func:`parse_file_name`). ODSE's own bands are called blue, green, red, nir, swir1, swir2
and thermal; cubehub keeps the store's names (Landsat's common names: nir08, swir16, swir22,
lwir11), so a name says which variable of the store it holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cubehub.compute.gapfill import FILL_SOURCE_SUFFIX
from cubehub.credentials import redact
from cubehub.errors import InputError
from cubehub.seasons import odse_span

__all__ = [
    "DEPTH",
    "FIELDS",
    "PATTERN",
    "THEME",
    "NameFields",
    "default_fields",
    "layer_file_name",
    "parse_file_name",
    "type_field",
]

THEME = "lcv"
DEPTH = "0..0cm"
PATTERN = "lcv_{variable}_{product}_{type}_{resolution}_0..0cm_{start}..{end}_{area}_epsg{code}_{version}.tif"
#: The fields of a name, in order (the theme and the variable are two).
FIELDS = (
    "theme",
    "variable",
    "product",
    "type",
    "resolution",
    "depth",
    "time",
    "area",
    "epsg",
    "version",
)
#: What a field given by a person may hold: ODSE's fields use lower-case letters, digits
#: and dots (``landsat.glad.ard``, ``v1.1``); ``_`` separates fields.
_FIELD = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


@dataclass(frozen=True)
class NameFields:
    """The fields of a layer's name that are the same for every layer of an export."""

    product: str
    """Source and procedure, e.g. ``landsat.glad.ard`` (ODSE) or ``sentinel.2.l2a``."""
    area: str
    """Name of the area the store covers, e.g. ``eumap`` (ODSE) or ``graz``."""
    version: str
    """Version of the product, e.g. ``v1.1``."""

    def __post_init__(self) -> None:
        for name in ("product", "area", "version"):
            value = getattr(self, name)
            if not _FIELD.match(value):
                raise InputError(
                    f"{name} {value!r} cannot be a field of an ODSE file name: use lower-case "
                    "letters, digits and dots only (no '_', which separates fields), e.g. "
                    + {"product": "landsat.glad.ard", "area": "eumap", "version": "v1.1"}[name]
                )


def _as_field(text: str) -> str:
    """``text`` made a valid field: lower case, every run of other characters one dot."""
    return re.sub(r"[^a-z0-9]+", ".", text.lower()).strip(".")


def default_fields(
    url: str,
    attrs: Mapping[str, Any],
    *,
    product: str | None = None,
    area: str | None = None,
    version: str | None = None,
) -> NameFields:
    """The name fields of an export of the store at ``url`` with root attributes ``attrs``:
    those given, the others from the store (see the module docstring)."""
    if product is None:
        product = _as_field(str(attrs.get("stac_collection") or "")) or "composite"
    if area is None:
        stem = redact(url).rstrip("/").rsplit("/", 1)[-1]
        for suffix in (".zarr", ".icechunk"):
            stem = stem.removesuffix(suffix)
        area = _as_field(stem) or "area"
    if version is None:
        made_by = str(attrs.get("cubehub_version") or "")
        parts = re.findall(r"\d+", made_by)[:2]
        version = "v" + ".".join(parts) if len(parts) == 2 else "v1.0"
    return NameFields(product=product, area=area, version=version)


def type_field(variable: str, percentile: float | None) -> str:
    """The type field: ``p50``; ``n`` (counts), ``c`` (codes) or ``v`` without a percentile."""
    if percentile is not None:
        return f"p{percentile:g}"
    if variable == "valid_count":
        return "n"
    return "c" if variable.endswith(FILL_SOURCE_SUFFIX) else "v"


def layer_file_name(
    variable: str,
    percentile: float | None,
    start: Any,
    end: Any,
    *,
    resolution_m: float,
    epsg: int,
    fields: NameFields,
) -> str:
    """The file name of one layer (see :data:`PATTERN`).

    >>> import numpy as np
    >>> layer_file_name("green", 50.0, np.datetime64("2019-06-25"), np.datetime64("2019-09-12"),
    ...                 resolution_m=30.0, epsg=3035,
    ...                 fields=NameFields("landsat.glad.ard", "eumap", "v1.1"))
    'lcv_green_landsat.glad.ard_p50_30m_0..0cm_2019.06.25..2019.09.12_eumap_epsg3035_v1.1.tif'
    """
    parts = (
        THEME,
        _as_field(variable),
        fields.product,
        type_field(variable, percentile),
        f"{resolution_m:g}m",
        DEPTH,
        odse_span(start, end),
        fields.area,
        f"epsg{epsg}",
        fields.version,
    )
    return "_".join(parts) + ".tif"


def parse_file_name(name: str) -> dict[str, str]:
    """The fields of a layer's file name, by :data:`FIELDS` name.

    Raises:
        InputError: ``name`` does not have the ten fields of :data:`PATTERN`.
    """
    parts = name.removesuffix(".tif").split("_")
    if len(parts) != len(FIELDS) or parts[0] != THEME or parts[5] != DEPTH:
        raise InputError(f"{name!r} is not named {PATTERN}")
    return dict(zip(FIELDS, parts, strict=True))
