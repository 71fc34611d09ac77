"""A plain numpy reference of the gap-fill rules, for tests: the rules as
:mod:`cubehub.compute.gapfill` states them, one value at a time with ``numpy.nanmedian``,
sharing no code with the kernel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from cubehub.compute.gapfill import UNFILLED, FillRule, GapFillRules
from cubehub.gapfill import filled_variables
from cubehub.seasons import split_label

__all__ = ["reference", "reference_dataset"]


def reference(
    values: np.ndarray,
    seasons: list[tuple[int, str]],
    names: list[str],
    rules: GapFillRules,
    fill: list[bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill ``values`` (S, L, P) of ``seasons`` ((year, name) each, chronological) whose
    names go round the year in the order ``names``; ``fill[t]`` False leaves season t as it is.

    Returns (filled float32 (S, L, P), codes uint8 (S, P)), as :func:`fill_gaps` gives them.
    """
    n_seasons, n_layers, pixels = values.shape
    fill = fill or [True] * n_seasons
    out = values.astype(np.float32).copy()
    codes = np.zeros((n_seasons, pixels), np.uint8)
    steps: list[tuple[FillRule, int]] = []
    for rule in rules.order:
        if rule == "same_season":
            steps += [(rule, w) for w in range(1, rules.same_season_years + 1)]
        elif rule == "neighbour_seasons":
            steps += [(rule, j) for j in range(1, rules.neighbour_seasons + 1)]
        else:
            steps.append((rule, 0))
    for t, (year, name) in enumerate(seasons):
        for p in range(pixels):
            for layer in range(n_layers):
                if not np.isnan(values[t, layer, p]):
                    continue
                code = UNFILLED
                for k, (rule, window) in enumerate(steps, start=1):
                    if not fill[t]:
                        break
                    sources = []
                    for u, (y, n) in enumerate(seasons):
                        if rule == "same_season":
                            hit = n == name and 1 <= abs(y - year) <= window
                        elif rule == "neighbour_seasons":
                            d = abs(names.index(n) - names.index(name))
                            hit = y == year and 1 <= min(d, len(names) - d) <= window
                        else:
                            hit = y == year and u != t
                        if hit and not np.isnan(values[u, layer, p]):
                            sources.append(float(values[u, layer, p]))
                    if sources:
                        out[t, layer, p] = np.float32(np.nanmedian(np.array(sources)))
                        code = k
                        break
                codes[t, p] = max(codes[t, p], code)
    return out, codes


def reference_dataset(
    composite: xr.Dataset,
    names: list[str],
    rules: GapFillRules,
    leave_unfilled: Sequence[str] = (),
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:func:`reference` of every (season, percentile, y, x) variable of ``composite``
    (values in memory): name -> (filled (S, L, Y, X), codes (S, Y, X)). ``names``: the season
    names in the order of the year."""
    labels = [str(s) for s in composite["season"].values]
    seasons = [split_label(label) for label in labels]
    present = [n for n in names if any(m == n for _, m in seasons)]
    fill = [label not in leave_unfilled for label in labels]
    out = {}
    for name in filled_variables(composite):
        var = composite[name].transpose("season", "percentile", "y", "x")
        s, q, rows, cols = var.shape
        filled, codes = reference(
            np.asarray(var.values, np.float32).reshape(s, q, -1), seasons, present, rules, fill
        )
        out[name] = (filled.reshape(s, q, rows, cols), codes.reshape(s, rows, cols))
    return out
