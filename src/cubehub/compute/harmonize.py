"""Sensor harmonisation: Landsat TM / ETM+ surface reflectance -> OLI, per observation; pure.

A composite that mixes Landsat 5 TM, Landsat 7 ETM+ and Landsat 8/9 OLI observations mixes
sensors whose surface reflectance differs systematically (OLI's narrower bands, its
calibration): on average OLI reads brighter in the NIR and SWIR. ``harmonize: roy2016``
moves every TM and ETM+ observation into OLI's reflectance before the percentiles, with
the between-sensor transformation functions of

    Roy, D.P., Kovalskyy, V., Zhang, H.K., Vermote, E.F., Yan, L., Kumar, S.S., Egorov, A.
    (2016). Characterization of Landsat-7 to Landsat-8 reflective wavelength and normalized
    difference vegetation index continuity. *Remote Sensing of Environment* 185, 57-70.
    https://doi.org/10.1016/j.rse.2015.12.024

**Which numbers.** Table 2 of the paper gives, for surface reflectance, ordinary least
squares (OLS) fits in each direction and one reduced major axis (RMA) fit. cubehub uses
the OLS fit with OLI as the dependent variable, ``OLI = intercept + slope * ETM+``
(:data:`ROY2016_ETM_TO_OLI`): blue 0.0003 + 0.8474 x, green 0.0088 + 0.8483 x,
red 0.0061 + 0.9047 x, NIR 0.0412 + 0.8462 x, SWIR1 0.0254 + 0.8937 x,
SWIR2 0.0172 + 0.9071 x. The numbers are those quoted, as Table 2's OLS coefficients, by
the Google Earth Engine community tutorial "Landsat ETM+ to OLI Harmonization"
(google/earthengine-community, ``tutorials/landsat-etm-to-oli-harmonization``), and,
identically, by Table 3 of PMC8113344 ("Harmonizing Landsat TM, ETM+ and OLI") and several
public Earth Engine scripts.

**Why OLS, not RMA.** The task is to *predict* the OLI value of a TM/ETM+ observation, so
the composite's percentiles mix like with like: the OLS regression of OLI on ETM+ is the
one that minimises the error of that prediction. The RMA line (slopes 0.9785 .. 1.0171,
intercepts -0.0095 .. 0.0029, as quoted by the LandTrendr Earth Engine code) is symmetric
- one line for both directions - which suits moving OLI to ETM+ as well, but is not the
least-squares prediction of OLI. The Earth Engine tutorial makes the same choice.

**Scope.** As in the tutorial (and common practice), TM is treated as ETM+: the paper
characterises ETM+ only, and TM's bands are close to ETM+'s. Platforms ``landsat-4``,
``landsat-5`` and ``landsat-7`` are harmonised (:data:`HARMONISED_PLATFORMS`); OLI
observations (``landsat-8``, ``landsat-9``) are left as they are. Bands without a
coefficient - the thermal ``lwir11`` (kelvin, not reflectance), ``coastal`` (OLI only) -
are never touched.

**In DN.** The cube holds digital numbers (reflectance = DN * scale + offset; Landsat
Collection 2: 2.75e-5 and -0.2). :func:`harmonize_dn` decodes, applies the line in
reflectance units, and encodes back to the nearest DN, as the store encodes composites
(:func:`cubehub.output.encoding.encode_composite`: round half to even); nodata stays
nodata, and a valid observation never becomes nodata (it is kept within 1..65535).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeVar

import numpy as np

from cubehub.errors import InputError

__all__ = [
    "HARMONISATIONS",
    "HARMONISED_PLATFORMS",
    "ROY2016_ETM_TO_OLI",
    "check_harmonisation",
    "harmonize_dn",
    "harmonize_reflectance",
    "is_harmonised_platform",
]

_A = TypeVar("_A")

#: Roy et al. (2016) Table 2, surface reflectance, OLS, OLI = intercept + slope * ETM+:
#: band -> (slope, intercept), intercept in reflectance units.
ROY2016_ETM_TO_OLI: Final[Mapping[str, tuple[float, float]]] = {
    "blue": (0.8474, 0.0003),
    "green": (0.8483, 0.0088),
    "red": (0.9047, 0.0061),
    "nir08": (0.8462, 0.0412),
    "swir16": (0.8937, 0.0254),
    "swir22": (0.9071, 0.0172),
}

#: Every harmonisation cubehub knows, by the name a job gives (``harmonize: roy2016``):
#: band -> (slope, intercept) of the older sensors' reflectance into OLI's.
HARMONISATIONS: Final[Mapping[str, Mapping[str, tuple[float, float]]]] = {
    "roy2016": ROY2016_ETM_TO_OLI,
}

#: STAC ``platform`` values whose observations are harmonised: Landsat 4/5 TM, Landsat 7 ETM+.
HARMONISED_PLATFORMS: Final[tuple[str, ...]] = ("landsat-4", "landsat-5", "landsat-7")


def check_harmonisation(name: str | None) -> str | None:
    """``name`` if cubehub knows it (None: no harmonisation); :class:`InputError` listing
    the choices otherwise.

    >>> check_harmonisation("roy2016")
    'roy2016'
    """
    if name is None or name in HARMONISATIONS:
        return name
    raise InputError(
        f"unknown harmonisation {name!r}; choose one of: {', '.join(HARMONISATIONS)} "
        "(or leave harmonize out for none)"
    )


def is_harmonised_platform(platform: str) -> bool:
    """True for a TM or ETM+ platform (:data:`HARMONISED_PLATFORMS`); any spelling of it,
    ``"landsat-7"``, ``"LANDSAT_7"``, ``"Landsat 7"``.

    >>> is_harmonised_platform("LANDSAT_5"), is_harmonised_platform("landsat-8")
    (True, False)
    """
    return platform.strip().lower().replace("_", "-").replace(" ", "-") in HARMONISED_PLATFORMS


def harmonize_reflectance(reflectance: _A, band: str, name: str = "roy2016") -> _A:
    """TM/ETM+ surface reflectance of ``band`` as OLI would see it: ``intercept + slope * r``;
    a band without a coefficient is returned as it is.

    Works on NumPy, Dask and xarray arrays alike.

    >>> round(float(harmonize_reflectance(0.1, "nir08")), 5)  # 0.0412 + 0.8462 * 0.1
    0.12582
    """
    coefficients = HARMONISATIONS[check_harmonisation(name) or ""]
    if band not in coefficients:
        return reflectance
    slope, intercept = coefficients[band]
    result: _A = intercept + slope * reflectance  # type: ignore[operator,assignment]
    return result


def harmonize_dn(
    dn: Any,
    band: str,
    scale: float,
    offset: float,
    *,
    older: Any = True,
    name: str = "roy2016",
    nodata: int = 0,
) -> Any:
    """Unsigned-integer DNs of ``band`` with the TM/ETM+ observations moved into OLI's
    reflectance (see the module docstring), in the same DN encoding.

    Args:
        dn: DNs, any shape, of an unsigned integer dtype (the cube's uint16); NumPy or Dask.
        band: cubehub band name (``red``, ``nir08``, ...); bands without a coefficient
            are returned unchanged.
        scale, offset: the band's encoding, reflectance = DN * scale + offset.
        older: which observations are TM/ETM+: a boolean array broadcastable to ``dn``
            (e.g. shaped ``(time, 1, 1)``), or True (default) for all of them.
        name: the harmonisation, default ``roy2016``.
        nodata: the value of a missing observation, default 0; left as it is.

    Returns:
        An array of ``dn``'s shape and dtype: OLI observations and nodata as they were,
        the others ``round((slope * (DN * scale + offset) + intercept - offset) / scale)``,
        kept within 1 .. the dtype's maximum.

    >>> harmonize_dn(np.array([0, 10000], np.uint16), "red", 2.75e-5, -0.2)
    array([   0, 9962], dtype=uint16)
    """
    coefficients = HARMONISATIONS[check_harmonisation(name) or ""]
    if band not in coefficients:
        return dn
    dtype = np.dtype(dn.dtype)
    reflectance = dn.astype(np.float64) * scale + offset
    moved = (harmonize_reflectance(reflectance, band, name) - offset) / scale
    top = np.iinfo(dtype).max
    encoded = np.clip(np.rint(moved), max(nodata + 1, 1), top).astype(dtype)
    return np.where((dn == nodata) | np.logical_not(older), dn, encoded)
