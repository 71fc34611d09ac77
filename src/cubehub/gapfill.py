"""Cloud-free composites: gap filling of a composite across seasons and years (lazy).

:func:`gap_fill` fills every NaN pixel of every band, index and percentile by eumap's
temporal moving window median (the rules, their order, windows and defaults are in
:mod:`cubehub.compute.gapfill`) and adds, per variable, a ``<variable>_fill_source`` layer
(season, y, x; uint8): 0 where the value is observed, the code of the rule and window that
filled it otherwise, 255 where it stays missing. The codes and their meanings are in the
layer's ``flag_values`` and ``flag_meanings`` attributes (CF flags).

A composite's seasons are read from its labels (``"<year>-<name>"``) and start dates, so
any calendar works, and a store that holds only some seasons (``seasons: [summer]``) too.
Lazy on dask-backed composites, tile-sized memory (see
:func:`cubehub.compute.gapfill.fill_gaps_dask`); eager on numpy-backed ones.

Example:
    >>> filled = gap_fill(open_composite("graz.zarr"))  # doctest: +SKIP
    >>> observed_only = filled["red"].where(filled["red_fill_source"] == 0)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cubehub.compute.gapfill import (
    DEFAULT_ORDER,
    DEFAULT_RULES,
    FILL_SOURCE_SUFFIX,
    UNFILLED,
    FillRule,
    GapFillRules,
    SeasonTable,
    fill_gaps,
    fill_gaps_dask,
    fill_source_name,
)
from cubehub.errors import InputError
from cubehub.seasons import split_label

__all__ = [
    "GAP_FILL_ATTR",
    "GapFillSpec",
    "filled_url",
    "filled_variables",
    "gap_fill",
    "season_table",
    "stale_seasons",
]

#: Root attribute of a gap-filled composite: the rules (JSON) that filled it.
GAP_FILL_ATTR = "cubehub_gap_fill"


def filled_url(url: str) -> str:
    """The default URL of the gap-filled store of the composite store ``url``: ``-filled``
    before its ``.zarr`` (``graz.zarr`` -> ``graz-filled.zarr``), else appended."""
    stem = url.rstrip("/")
    if stem.endswith(".zarr"):
        return f"{stem.removesuffix('.zarr')}-filled.zarr"
    return f"{stem}-filled"


def season_table(composite: xr.Dataset) -> SeasonTable:
    """The years and names of a composite's seasons, from labels and ``season_start``."""
    if "season" not in composite.dims or "season_start" not in composite.coords:
        raise InputError(
            "gap filling needs a composite with a 'season' dimension and a 'season_start' "
            "coordinate (as seasonal_composite and open_composite give)"
        )
    labels = [str(s) for s in composite["season"].values]
    parsed = [split_label(label) for label in labels]
    starts = pd.to_datetime(composite["season_start"].values)
    offsets = [
        float((start - pd.Timestamp(year, 1, 1)).days)
        for (year, _), start in zip(parsed, starts, strict=True)
    ]
    return SeasonTable.build([y for y, _ in parsed], [n for _, n in parsed], offsets)


def filled_variables(composite: xr.Dataset) -> list[str]:
    """The variables gap filling fills: those with season and percentile dims (bands, indices)."""
    return [
        str(name)
        for name, var in composite.data_vars.items()
        if {"season", "percentile"} <= set(var.dims) and not str(name).endswith(FILL_SOURCE_SUFFIX)
    ]


def _year_runs(table: SeasonTable) -> list[list[int]]:
    """Consecutive seasons of one label year: each run is filled by one task per chunk."""
    runs: list[list[int]] = []
    for k, year in enumerate(table.years.tolist()):
        if runs and table.years[runs[-1][-1]] == year:
            runs[-1].append(k)
        else:
            runs.append([k])
    return runs


def gap_fill(
    composite: xr.Dataset,
    rules: GapFillRules = DEFAULT_RULES,
    *,
    leave_unfilled: Iterable[str] = (),
) -> xr.Dataset:
    """The composite with its gaps filled and a ``<variable>_fill_source`` layer per variable.

    Args:
        composite: from :func:`cubehub.composite.seasonal_composite` or
            :func:`cubehub.output.open.open_composite`: variables (season, percentile, y,
            x), coordinates ``season`` and ``season_start``. Other variables
            (``valid_count``) are kept as they are: counts stay the observed ones.
        rules: order and windows of the rules; default eumap's TMWM (see
            :mod:`cubehub.compute.gapfill`).
        leave_unfilled: season labels to leave as they are (their gaps stay NaN, code 255),
            e.g. seasons without acquisitions under ``on_empty_season: nan``.

    Returns:
        A dataset of the same variables (filled ones float32, their attrs and encodings
        kept) plus the fill-source layers; attribute :data:`GAP_FILL_ATTR` holds the rules
        and the meaning of each code.
    """
    table = season_table(composite)
    labels = [str(s) for s in composite["season"].values]
    unknown = sorted(set(leave_unfilled) - set(labels))
    if unknown:
        raise InputError(f"leave_unfilled names season(s) {unknown} the composite lacks")
    left = set(leave_unfilled)
    names = filled_variables(composite)
    if not names:
        raise InputError(
            "the composite has no variable with season and percentile dimensions to fill"
        )
    legend = rules.legend()
    out = composite.copy()
    for name in names:
        # float32 before the kernel (which fills in float32): a store decodes to float64,
        # and the chunks a window holds would take twice the memory.
        var = composite[name].transpose("season", "percentile", ...).astype(np.float32)
        spatial = var.dims[2:]
        values: list[Any] = []  # per year: dask or numpy, as the input
        codes: list[Any] = []
        for run in _year_runs(table):
            fill = [labels[t] not in left for t in run]
            f: Any
            c: Any
            if isinstance(var.data, da.Array):
                f, c = fill_gaps_dask(var.data, table, run, rules, fill=fill)
            else:
                f, c = fill_gaps(var.values, table, run, rules, fill=fill)
            values.append(f)
            codes.append(c)
        join = da.concatenate if isinstance(var.data, da.Array) else np.concatenate
        filled = xr.DataArray(join(values), dims=var.dims, coords=var.coords, attrs=var.attrs)
        out[name] = filled.transpose(*composite[name].dims)
        out[name].encoding = dict(composite[name].encoding)
        out[fill_source_name(name)] = xr.DataArray(
            join(codes),
            dims=("season", *spatial),
            coords={k: v for k, v in var.coords.items() if set(v.dims) <= {"season", *spatial}},
            attrs={
                "long_name": f"how {name} was filled: 0 observed, else the rule (see flag_meanings)",
                "flag_values": list(legend),
                "flag_meanings": " ".join(legend.values()),
                "comment": f"{UNFILLED}: no observed value and no rule could fill it",
            },
        )
    out.attrs[GAP_FILL_ATTR] = json.dumps({**rules.to_json(), "codes": legend})
    return out


def stale_seasons(
    composite: xr.Dataset,
    filled: Sequence[str],
    rules: GapFillRules = DEFAULT_RULES,
    *,
    leave_unfilled: Iterable[str] = (),
) -> list[str]:
    """Seasons of ``filled`` (already filled, in an earlier run) that a season of
    ``composite`` not in ``filled`` can fill from, so they must be filled again.

    ``composite``: the whole series now (its seasons a superset of ``filled``).
    """
    table = season_table(composite)
    labels = [str(s) for s in composite["season"].values]
    done = {labels.index(s) for s in filled if s in labels}
    new = set(range(len(labels))) - done
    left = set(leave_unfilled)
    return [
        labels[t]
        for t in sorted(done)
        if labels[t] not in left and new.intersection(table.inputs(t, rules))
    ]


class GapFillSpec(BaseModel):
    """Gap filling of the composites into a second, cloud-free store (eumap's TMWM; the
    rules, their order and defaults: :mod:`cubehub.compute.gapfill`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order: tuple[FillRule, ...] = Field(
        DEFAULT_ORDER,
        description="rules tried in this order: same_season, neighbour_seasons, annual",
    )
    same_season_years: int = Field(
        DEFAULT_RULES.same_season_years,
        ge=1,
        le=100,
        description="the same season in years y±1 .. y±this (default 4: eumap's 9-year window)",
    )
    neighbour_seasons: int = Field(
        DEFAULT_RULES.neighbour_seasons,
        ge=1,
        le=100,
        description="seasons s±1 .. s±this of the same year, round the year (default 1)",
    )
    output: str | None = Field(
        None,
        description="store of the filled composites; default: the output with -filled before .zarr",
    )

    @model_validator(mode="after")
    def _rules(self) -> GapFillSpec:
        try:
            self.rules()
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return self

    def rules(self) -> GapFillRules:
        return GapFillRules(self.order, self.same_season_years, self.neighbour_seasons)
