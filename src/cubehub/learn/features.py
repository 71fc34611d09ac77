"""Per-pixel features of a composite store: one per variable x season x percentile, plus the
clear-observation count of each season; names, lookup and the check against a model; pure.

Two namings, chosen by the caller (default ``"cube"``):

* ``"cube"``: ``<variable>_<season>_p<q>`` and ``valid_count_<season>``, e.g.
  ``red_2022-summer_p50`` and ``valid_count_2022-summer``;
* ``"odse"``: the ODSE layer names of :func:`cubehub.output.encoding.odse_name`, e.g.
  ``red_p50_2022.06.25..2022.09.12`` and ``valid_count_2022.06.25..2022.09.12``.

A model trained on columns of :func:`cubehub.learn.sample.sample_points` knows its features
by these names; :func:`check_features` maps them back onto the store before any pixel is read.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import xarray as xr

from cubehub.errors import InputError
from cubehub.output.encoding import odse_name
from cubehub.seasons import odse_span

__all__ = ["COUNT", "Feature", "Naming", "check_features", "feature_array", "store_features"]

Naming = Literal["cube", "odse"]
#: The variable of clear-observation counts; it has no percentile.
COUNT = "valid_count"


@dataclass(frozen=True)
class Feature:
    """One feature: a 2-D layer of the store."""

    name: str
    variable: str
    season: str
    percentile: float | None
    """None for :data:`COUNT`."""


def _name(variable: str, season: str, span: str, percentile: float | None, naming: Naming) -> str:
    if naming == "odse":
        return odse_name(variable, span, percentile)
    return f"{variable}_{season}" + (f"_p{percentile:g}" if percentile is not None else "")


def store_features(ds: xr.Dataset, naming: Naming = "cube") -> list[Feature]:
    """Every feature of a composite, in store order: variables, then seasons, then percentiles.

    Args:
        ds: a composite (:func:`cubehub.output.open.open_composite`), metadata only.
        naming: ``"cube"`` (default) or ``"odse"`` (see the module docstring).
    """
    if naming not in ("cube", "odse"):
        raise InputError(f"feature naming must be 'cube' or 'odse', got {naming!r}")
    seasons = [str(s) for s in ds["season"].values]
    spans = [
        odse_span(start, end)
        for start, end in zip(ds["season_start"].values, ds["season_end"].values, strict=True)
    ]
    out = []
    for name, var in ds.data_vars.items():
        if "season" not in var.dims:
            continue
        qs: list[float | None] = (
            [float(q) for q in ds["percentile"].values] if "percentile" in var.dims else [None]
        )
        for season, span in zip(seasons, spans, strict=True):
            for q in qs:
                out.append(Feature(_name(str(name), season, span, q, naming), str(name), season, q))
    return out


def check_features(names: Sequence[str], ds: xr.Dataset) -> list[Feature]:
    """The store's features called ``names``, in that order, in either naming.

    Raises:
        InputError: names the store lacks, all of them listed, with the closest store names;
            raised from metadata, before any pixel is read.
    """
    if not names:
        raise InputError("the model names no features; train it on a pandas DataFrame of samples")
    table = {f.name: f for naming in ("cube", "odse") for f in store_features(ds, naming)}
    missing = [n for n in names if n not in table]
    if missing:
        hints = []
        for name in missing[:3]:
            close = difflib.get_close_matches(name, list(table), n=1)
            if close:
                hints.append(f"{name} -> {close[0]}?")
        seasons = ", ".join(str(s) for s in ds["season"].values)
        raise InputError(
            f"the model needs {len(missing)} feature(s) the store lacks: {', '.join(missing)}"
            + (f" (closest: {'; '.join(hints)})" if hints else "")
            + f". The store has variables {', '.join(map(str, ds.data_vars))} and seasons "
            f"{seasons}; train on samples of this store, or predict on a store with those layers"
        )
    return [table[n] for n in names]


def feature_array(ds: xr.Dataset, features: Sequence[Feature]) -> xr.DataArray:
    """The features as one lazy float32 (feature, y, x) array, chunked like the store."""
    layers = []
    for f in features:
        layer = ds[f.variable].sel(season=f.season, drop=True)
        if f.percentile is not None:
            layer = layer.sel(percentile=f.percentile, drop=True)
        keep = [c for c in layer.coords if set(layer[c].dims) <= {"y", "x"}]
        layers.append(layer.reset_coords([c for c in layer.coords if c not in keep], drop=True))
    stacked = xr.concat(layers, dim="feature", coords="minimal", compat="override")
    return stacked.astype("float32").assign_coords(feature=[f.name for f in features])
