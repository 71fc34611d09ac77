"""Gap filling of seasonal composites by eumap's temporal moving window median (TMWM); pure.

A missing value (NaN) of season *s* in year *y* takes, for each layer (a band, index or
percentile) on its own, the first of these that has an observed value:

1. ``same_season``: the median of season *s* in the years ``y-w .. y+w``, for
   ``w = 1, 2, ..`` up to ``same_season_years`` (year edges: the years that exist);
2. ``neighbour_seasons``: the median of the seasons ``s-j .. s+j`` (``j = 1 ..
   neighbour_seasons``) of the same year *y*, counted round the year (winter's ``s-1`` is
   the autumn of the same year) over the season names the stack holds (in a store of
   winters and summers only, they are each other's neighbours);
3. ``annual``: the median of every other season of year *y*.

Only observed values are sources, never values filled by an earlier rule, so the result
does not depend on the order in which seasons are filled. The median is numpy's
(``numpy.nanmedian``: the mean of the two middle values when their number is even),
computed in float64 from the float32 inputs and rounded once to float32. Each step (a rule
at one window) has a code, in the order of the rules: with the defaults 1..4 are the same
season within 1..4 years, 5 the neighbouring seasons and 6 the whole year; 0 marks an
observed value and :data:`UNFILLED` a value that stays missing.

Defaults and their source: the rule order and the window of nine years (``y±4``) are those
of eumap's TMWM (``skmap.gapfiller.TMWM``, ``time_win_size=9``; Witjes et al. 2022,
PeerJ 10:e13573, the method behind the ODSE / GeoHarmonizer cloud-free Landsat
composites). eumap starts at the whole window; here it grows one year at a time, so the
nearest years win. ``neighbour_seasons=1`` is the issue's ``s±1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import dask.array as da
import numba
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from cubehub.errors import InputError

__all__ = [
    "DEFAULT_ORDER",
    "DEFAULT_RULES",
    "FILL_SOURCE_SUFFIX",
    "UNFILLED",
    "FillRule",
    "GapFillRules",
    "SeasonTable",
    "fill_gaps",
    "fill_gaps_dask",
    "fill_source_name",
]

FillRule = Literal["same_season", "neighbour_seasons", "annual"]
#: eumap's TMWM order: same season in other years, neighbouring seasons, the whole year.
DEFAULT_ORDER: tuple[FillRule, ...] = ("same_season", "neighbour_seasons", "annual")
#: Code of a value that no rule could fill (stays NaN); also the stored fill value.
UNFILLED = 255
#: A variable ``red`` is recorded in ``red_fill_source``.
FILL_SOURCE_SUFFIX = "_fill_source"


def fill_source_name(variable: str) -> str:
    """The name of the layer that says how ``variable`` was filled: ``"red_fill_source"``."""
    return f"{variable}{FILL_SOURCE_SUFFIX}"


@dataclass(frozen=True)
class GapFillRules:
    """Which rules fill a gap, in which order, and how far each looks.

    Attributes:
        order: the rules, each at most once, tried in this order (default
            :data:`DEFAULT_ORDER`).
        same_season_years: the same season in years ``y±1`` .. ``y±same_season_years``
            (default 4: eumap's nine-year window).
        neighbour_seasons: seasons ``s±1`` .. ``s±neighbour_seasons`` of the same year,
            round the year (default 1).
    """

    order: tuple[FillRule, ...] = DEFAULT_ORDER
    same_season_years: int = 4
    neighbour_seasons: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", tuple(self.order))
        valid = get_args(FillRule)
        bad = [r for r in self.order if r not in valid]
        if bad or not self.order or len(set(self.order)) != len(self.order):
            raise InputError(
                f"gap fill order {list(self.order)} must name each of {', '.join(valid)} at most "
                "once, and at least one"
            )
        for name in ("same_season_years", "neighbour_seasons"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
                raise InputError(f"gap fill {name} must be an integer in 1..100, got {value!r}")

    def steps(self) -> list[tuple[FillRule, int]]:
        """The (rule, window) of each code, code ``k`` at position ``k - 1``."""
        out: list[tuple[FillRule, int]] = []
        for rule in self.order:
            if rule == "same_season":
                out += [(rule, w) for w in range(1, self.same_season_years + 1)]
            elif rule == "neighbour_seasons":
                out += [(rule, j) for j in range(1, self.neighbour_seasons + 1)]
            else:
                out.append((rule, 0))
        return out

    def legend(self) -> dict[int, str]:
        """Code -> meaning, e.g. ``{0: "observed", 1: "same_season_1y", ..., 255: "unfilled"}``."""
        names = {"same_season": "same_season_{}y", "neighbour_seasons": "neighbour_seasons_{}"}
        out = {0: "observed"}
        for code, (rule, window) in enumerate(self.steps(), start=1):
            out[code] = names[rule].format(window) if rule in names else rule
        out[UNFILLED] = "unfilled"
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "order": list(self.order),
            "same_season_years": self.same_season_years,
            "neighbour_seasons": self.neighbour_seasons,
        }


#: The defaults: eumap's TMWM (see the module docstring).
DEFAULT_RULES = GapFillRules()


@dataclass(frozen=True)
class SeasonTable:
    """Where each season of a stack lies in the year: its year and its name's place.

    Attributes:
        years: (S,) the label year of each season.
        names: (S,) index of each season's name in the order of the year (0 = the first
            season of a year, e.g. winter).
        n_names: how many season names there are; neighbours are counted round them.
    """

    years: np.ndarray
    names: np.ndarray
    n_names: int

    @classmethod
    def build(
        cls, years: Sequence[int], names: Sequence[str], offsets: Sequence[float]
    ) -> SeasonTable:
        """From each season's label year, name and start (days from 1 January of its year,
        negative for a window that starts in the year before); names are put in the order
        of their median start."""
        order = sorted(
            set(names),
            key=lambda n: float(
                np.median([o for m, o in zip(names, offsets, strict=True) if m == n])
            ),
        )
        place = {n: k for k, n in enumerate(order)}
        keys = list(zip(years, names, strict=True))
        if len(set(keys)) != len(keys):
            raise InputError(f"a season occurs twice in the stack: {keys}")
        return cls(
            np.asarray(years, dtype=np.int64),
            np.array([place[n] for n in names], dtype=np.int64),
            len(order),
        )

    def sources(self, target: int, rule: FillRule, window: int) -> list[int]:
        """Seasons (indices) whose observed values fill ``target`` at this rule and window."""
        year, name = self.years[target], self.names[target]
        same_year = self.years == year
        if rule == "same_season":
            dy = np.abs(self.years - year)
            hit = (self.names == name) & (dy >= 1) & (dy <= window)
        elif rule == "neighbour_seasons":
            d = np.abs(self.names - name)
            ring = np.minimum(d, self.n_names - d)
            hit = same_year & (ring >= 1) & (ring <= window)
        else:
            hit = same_year & (np.arange(len(self.years)) != target)
        return np.flatnonzero(hit).tolist()

    def inputs(self, target: int, rules: GapFillRules) -> list[int]:
        """Every season a gap of ``target`` may be filled from, under ``rules``."""
        found: set[int] = set()
        for rule, window in rules.steps():
            found.update(self.sources(target, rule, window))
        return sorted(found)

    def subset(self, seasons: Sequence[int]) -> SeasonTable:
        return SeasonTable(self.years[list(seasons)], self.names[list(seasons)], self.n_names)


@dataclass(frozen=True)
class _Sources:
    """Kernel tables: for target ``t`` and step ``k`` the sources are
    ``index[start[t, k] : start[t, k] + count[t, k]]``."""

    index: np.ndarray
    start: np.ndarray
    count: np.ndarray


def _sources(
    table: SeasonTable, targets: Sequence[int], rules: GapFillRules, fill: Sequence[bool]
) -> _Sources:
    steps = rules.steps()  # at most 100 + 100 + 1: every code fits below UNFILLED
    index: list[int] = []
    start = np.zeros((len(targets), len(steps)), np.int64)
    count = np.zeros((len(targets), len(steps)), np.int64)
    for t, (target, wanted) in enumerate(zip(targets, fill, strict=True)):
        for k, (rule, window) in enumerate(steps):
            found = table.sources(target, rule, window) if wanted else []
            start[t, k], count[t, k] = len(index), len(found)
            index += found
    return _Sources(np.asarray(index, np.int64), start, count)


def fill_gaps(
    values: np.ndarray,
    table: SeasonTable,
    targets: Sequence[int],
    rules: GapFillRules = DEFAULT_RULES,
    *,
    fill: Sequence[bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the NaN values of the ``targets`` seasons of a stack from its other seasons.

    Args:
        values: ``(S, L, *spatial)`` float32 (or float64) stack: S seasons, L layers (e.g.
            percentiles) filled independently of each other.
        table: the stack's seasons (:class:`SeasonTable`).
        targets: indices of the seasons to return, filled.
        rules: the rules (default: eumap's TMWM order, see the module docstring).
        fill: per target, False to return it unfilled (default: fill every target).

    Returns:
        ``(filled, codes)``: float32 ``(len(targets), L, *spatial)``; uint8
        ``(len(targets), *spatial)``, per pixel the highest code its layers needed (0
        observed; :data:`UNFILLED` when a layer stays missing).
    """
    values = np.asarray(values)
    if values.ndim < 2 or values.shape[0] != len(table.years):
        raise InputError(
            f"values must be (seasons, layers, ...) with {len(table.years)} seasons, got {values.shape}"
        )
    bad = [t for t in targets if not 0 <= t < values.shape[0]]
    if bad:
        raise InputError(f"target seasons {bad} are not in the stack of {values.shape[0]}")
    wanted = [True] * len(targets) if fill is None else list(fill)
    sources = _sources(table, targets, rules, wanted)
    spatial = values.shape[2:]
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(*values.shape[:2], -1)
    filled = np.empty((len(targets), flat.shape[1], flat.shape[2]), np.float32)
    codes = np.empty((len(targets), flat.shape[2]), np.uint8)
    _kernel(
        flat,
        np.asarray(targets, np.int64),
        sources.index,
        sources.start,
        sources.count,
        filled,
        codes,
    )
    return filled.reshape(len(targets), flat.shape[1], *spatial), codes.reshape(
        len(targets), *spatial
    )


def fill_gaps_dask(
    values: da.Array,
    table: SeasonTable,
    targets: Sequence[int],
    rules: GapFillRules = DEFAULT_RULES,
    *,
    fill: Sequence[bool] | None = None,
) -> tuple[da.Array, da.Array]:
    """Lazy :func:`fill_gaps` of a dask stack, chunk by chunk (same arguments).

    ``values`` is rechunked to one season and all layers per chunk if it is not so already
    (a store holds it so). Each output chunk is one task that takes that chunk of only the
    seasons the targets can be filled from (:meth:`SeasonTable.inputs`), straight from
    ``values``' own tasks: memory per task is bounded by the window of the rules, however
    long the series. Values and codes come from the same tasks; compute or store them
    together so that each chunk is filled once.
    """
    if not isinstance(values, da.Array) or values.ndim < 2:
        raise InputError("fill_gaps_dask takes a (seasons, layers, ...) dask array")
    n_seasons = values.shape[0]
    if n_seasons != len(table.years):
        raise InputError(f"values have {n_seasons} seasons, the table {len(table.years)}")
    if values.chunks[0] != (1,) * n_seasons or len(values.chunks[1]) > 1:
        values = values.rechunk({0: 1, 1: -1})
    wanted = [True] * len(targets) if fill is None else list(fill)
    window = sorted(
        set(targets).union(
            *(table.inputs(t, rules) for t, w in zip(targets, wanted, strict=True) if w)
        )
    )
    local_targets = [window.index(t) for t in targets]
    sources = _sources(table.subset(window), local_targets, rules, wanted)
    n_layers = values.shape[1]
    name = "cubehub-gapfill-" + tokenize(values.name, window, list(targets), rules, wanted)
    layer: dict[Any, Any] = {}
    for block in np.ndindex(*values.numblocks[2:]):
        inputs = [(values.name, u, 0, *block) for u in window]
        layer[(name, 0, 0, *block)] = (_packed_block, sources, local_targets, *inputs)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[cast(Any, values)])
    chunks = ((len(targets),), (n_layers + 1,), *values.chunks[2:])
    meta = np.empty((0,) * values.ndim, np.float32)
    packed = da.Array(graph, name, chunks, dtype=np.float32, meta=meta)
    # The codes travel as an extra float32 plane (exact for 0..255).
    return packed[:, :n_layers], packed[:, n_layers].astype(np.uint8)


def _packed_block(sources: _Sources, targets: list[int], *blocks: np.ndarray) -> np.ndarray:
    """Fill one chunk: ``blocks`` are the window's seasons, each ``(1, L, *spatial)``."""
    stack = np.concatenate([np.asarray(b, dtype=np.float32) for b in blocks])
    n_layers, spatial = stack.shape[1], stack.shape[2:]
    flat = stack.reshape(stack.shape[0], n_layers, -1)
    filled = np.empty((len(targets), n_layers, flat.shape[2]), np.float32)
    codes = np.empty((len(targets), flat.shape[2]), np.uint8)
    _kernel(
        flat, np.asarray(targets, np.int64), sources.index, sources.start, sources.count,
        filled, codes,
    )  # fmt: skip
    packed = np.concatenate([filled, codes[:, None].astype(np.float32)], axis=1)
    return packed.reshape(len(targets), n_layers + 1, *spatial)


@numba.njit(nogil=True, cache=True)
def _median(buf: np.ndarray, n: int) -> float:
    """numpy's median of ``buf[:n]`` (sorted in place by insertion: n is small)."""
    for i in range(1, n):
        x = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > x:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = x
    half = n // 2
    if n % 2:
        return float(buf[half])
    return float((buf[half - 1] + buf[half]) / 2.0)


@numba.njit(nogil=True, cache=True)
def _kernel(
    values: np.ndarray,
    targets: np.ndarray,
    index: np.ndarray,
    start: np.ndarray,
    count: np.ndarray,
    filled: np.ndarray,
    codes: np.ndarray,
) -> None:
    """values (S, L, P); filled (T, L, P); codes (T, P). Pixels are the inner loop, so an
    observed value costs a contiguous copy; a gap walks its steps until one has a value."""
    n_layers, pixels = values.shape[1], values.shape[2]
    n_steps = start.shape[1]
    buf = np.empty(max(1, values.shape[0]), np.float64)
    for t in range(targets.shape[0]):
        target = targets[t]
        for p in range(pixels):
            codes[t, p] = 0
        for layer in range(n_layers):
            for p in range(pixels):
                v = values[target, layer, p]
                if not math.isnan(v):
                    filled[t, layer, p] = v
                    continue
                result = math.nan
                code = UNFILLED
                for k in range(n_steps):
                    n = 0
                    for j in range(start[t, k], start[t, k] + count[t, k]):
                        x = values[index[j], layer, p]
                        if not math.isnan(x):
                            buf[n] = x
                            n += 1
                    if n:
                        result = _median(buf, n)
                        code = k + 1
                        break
                filled[t, layer, p] = result
                if code > codes[t, p]:
                    codes[t, p] = code
