"""Spectral indices from the Awesome Spectral Indices catalogue, via spyndex.

spyndex names its inputs with symbols (``N`` near infrared, ``R`` red, ...) and evaluates
each index's formula on whatever array objects it is given, so it stays lazy on Dask.
This module maps cubehub's common band names to those symbols, fills the formula
constants (``L``, ``g``, ``C1``, ``C2``, ...) with spyndex's documented defaults, checks
that every needed band is present before anything is computed, and returns float32.

Inputs must be surface reflectance (unitless, about 0..1), not digital numbers: several
indices (EVI, SAVI) add constants that assume reflectance. Where a denominator is zero
the result is inf or NaN, as NumPy gives it; NaN inputs (masked pixels) give NaN.

The same call serves two uses: on each observation's reflectance before the percentiles
(an index per date), and on composite bands afterwards (an index of the percentiles).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
import spyndex
import xarray as xr

from cubehub.errors import InputError

__all__ = ["BAND_SYMBOLS", "compute_indices", "index_bands", "supported_indices"]

#: spyndex band symbol -> cubehub common band names that can stand for it, preferred first.
#: Landsat has no broad NIR band (Sentinel-2 B08, ``nir``); its only NIR band is ``nir08``
#: (OLI B5, ETM+ B4), which is also what spyndex's own Landsat table uses for ``N``.
BAND_SYMBOLS: dict[str, tuple[str, ...]] = {
    "A": ("coastal",),
    "B": ("blue",),
    "G": ("green",),
    "R": ("red",),
    "RE1": ("rededge1",),
    "RE2": ("rededge2",),
    "RE3": ("rededge3",),
    "N": ("nir", "nir08"),
    "N2": ("nir08",),
    "WV": ("nir09",),
    "S1": ("swir16",),
    "S2": ("swir22",),
}


@cache
def _catalogue() -> dict[str, Any]:
    """spyndex's index catalogue, read once (spyndex parses its JSON on every access)."""
    return dict(spyndex.indices)


@cache
def _default_constants() -> dict[str, float]:
    return {
        name: float(c.default)
        for name, c in spyndex.constants.items()
        if isinstance(c.default, int | float)
    }


@cache
def supported_indices() -> tuple[str, ...]:
    """Names of the indices cubehub can compute: every input is a band it maps or a
    constant with a default (so kernel indices and those needing thermal bands are out)."""
    usable = set(BAND_SYMBOLS) | set(_default_constants())
    return tuple(sorted(name for name, index in _catalogue().items() if set(index.bands) <= usable))


def _check_names(names: Sequence[str]) -> list[str]:
    if isinstance(names, str):
        names = [names]
    if not names:
        raise InputError("no spectral index requested: name at least one, e.g. ['NDVI']")
    known = supported_indices()
    for name in names:
        if name in known:
            continue
        if name in _catalogue():
            missing = sorted(set(_catalogue()[name].bands) - set(BAND_SYMBOLS))
            raise InputError(
                f"spectral index {name!r} needs inputs cubehub does not provide "
                f"({', '.join(missing)}); choose another index"
            )
        # Compare case-insensitively: "ndvi" should suggest "NDVI".
        by_lower = {k.lower(): k for k in known}
        close = [by_lower[k] for k in difflib.get_close_matches(name.lower(), by_lower, n=5)]
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else f"the {len(known)} valid names are: {', '.join(known)}"
        )
        raise InputError(f"unknown spectral index {name!r}; {hint}")
    return list(dict.fromkeys(names))


def _band_symbols(name: str) -> list[str]:
    return [s for s in _catalogue()[name].bands if s in BAND_SYMBOLS]


def _pick_band(symbol: str, available: Collection[str] | None) -> str | None:
    candidates = BAND_SYMBOLS[symbol]
    if available is None:
        return candidates[0]
    return next((band for band in candidates if band in available), None)


def index_bands(names: Sequence[str], *, available: Collection[str] | None = None) -> set[str]:
    """Common band names that the indices ``names`` need.

    With ``available`` (the bands the data has), a symbol with alternatives resolves to
    the band present (``N`` -> ``nir08`` on Landsat); without it, to the preferred band.
    Unknown index names raise :class:`~cubehub.errors.InputError` with the closest
    valid names.

    >>> sorted(index_bands(["NDVI", "NBR"]))
    ['nir', 'red', 'swir22']
    """
    needed: set[str] = set()
    for name in _check_names(names):
        for symbol in _band_symbols(name):
            needed.add(_pick_band(symbol, available) or BAND_SYMBOLS[symbol][0])
    return needed


def _drop_band_labels(bands: dict[str, xr.DataArray]) -> dict[str, xr.DataArray]:
    """Drop scalar coordinates whose value differs between the bands, such as the ``band``
    label left by ``cube.sel(band="red")``: an index would otherwise carry one band's label."""
    arrays = list(bands.values())
    differing = {
        name
        for arr in arrays
        for name, coord in arr.coords.items()
        if coord.ndim == 0
        and not all(name in other.coords and other.coords[name].equals(coord) for other in arrays)
    }
    return {band: arr.drop_vars(list(differing), errors="ignore") for band, arr in bands.items()}


def compute_indices(
    reflectance: xr.Dataset | Mapping[str, xr.DataArray],
    names: Sequence[str],
    *,
    constants: Mapping[str, float] | None = None,
) -> xr.Dataset:
    """Spectral indices ``names`` from surface reflectance bands, as float32 variables.

    ``reflectance`` maps common band names (``red``, ``nir``, ...) to DataArrays of the
    same shape (a Dataset, or a dict); extra bands are ignored. Bands are cast to
    float32 first, which keeps Dask graphs lazy and halves their memory. ``constants``
    override spyndex's defaults (``L`` = 1.0 for SAVI and EVI, ``g`` = 2.5, ``C1`` = 6,
    ``C2`` = 7.5; pass ``{"L": 0.5}`` for the classic SAVI). A band an index needs but
    that is missing raises :class:`~cubehub.errors.InputError` before anything runs.
    """
    wanted = _check_names(names)
    source = reflectance.data_vars if isinstance(reflectance, xr.Dataset) else reflectance
    bands = {str(name): arr for name, arr in source.items()}
    params_const = _default_constants() | dict(constants or {})
    unknown_constants = sorted(set(constants or {}) - set(_default_constants()))
    if unknown_constants:
        raise InputError(
            f"unknown index constants {unknown_constants}; "
            f"valid names: {', '.join(sorted(_default_constants()))}"
        )

    plan: dict[str, dict[str, str]] = {}
    missing: dict[str, list[str]] = {}
    for name in wanted:
        chosen = {symbol: _pick_band(symbol, bands) for symbol in _band_symbols(name)}
        lacking = [" or ".join(BAND_SYMBOLS[s]) for s, band in chosen.items() if band is None]
        if lacking:
            missing[name] = lacking
        plan[name] = {s: b for s, b in chosen.items() if b is not None}
    if missing:
        detail = "; ".join(f"{name} needs {', '.join(bands_)}" for name, bands_ in missing.items())
        raise InputError(
            f"bands missing for the requested indices: {detail}. "
            f"Available bands: {', '.join(sorted(map(str, bands))) or 'none'}; "
            "load the missing bands too"
        )

    float_bands = _drop_band_labels(
        {
            band: (arr if arr.dtype == np.float32 else arr.astype(np.float32))
            for band, arr in bands.items()
            if any(band in chosen.values() for chosen in plan.values())
        }
    )
    out: dict[str, xr.DataArray] = {}
    for name in wanted:
        index = _catalogue()[name]
        params: dict[str, Any] = {s: float_bands[b] for s, b in plan[name].items()}
        params |= {c: params_const[c] for c in index.bands if c not in BAND_SYMBOLS}
        result = spyndex.computeIndex(name, params=params)
        out[name] = result.astype(np.float32).rename(name)
        out[name].attrs = {"long_name": index.long_name, "formula": index.formula}
    return xr.Dataset(out)
