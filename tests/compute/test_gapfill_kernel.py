"""The gap-fill kernel against a plain numpy reference of the rules (hypothesis), year edges,
seasons wrapping the year, rule order, and the dask wrapper's bounded windows."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest import approx

from cubehub.compute.gapfill import (
    DEFAULT_RULES,
    UNFILLED,
    FillRule,
    GapFillRules,
    SeasonTable,
    fill_gaps,
    fill_gaps_dask,
)
from cubehub.errors import InputError
from cubehub.testing.gapfill import reference

NAMES = ("winter", "spring", "summer", "autumn", "late")
OFFSETS = {"winter": -30.0, "spring": 80.0, "summer": 176.0, "autumn": 256.0, "late": 330.0}


def table_of(seasons: list[tuple[int, str]]) -> SeasonTable:
    return SeasonTable.build(
        [y for y, _ in seasons], [n for _, n in seasons], [OFFSETS[n] for _, n in seasons]
    )


@st.composite
def stacks(
    draw: Any,
) -> tuple[np.ndarray, list[tuple[int, str]], list[str], GapFillRules, list[bool]]:
    n_names = draw(st.integers(1, len(NAMES)))
    names = list(NAMES[:n_names])
    years = sorted(draw(st.sets(st.integers(2000, 2007), min_size=1, max_size=5)))
    cells = [(y, n) for y in years for n in names]
    keep = draw(st.lists(st.booleans(), min_size=len(cells), max_size=len(cells)))
    seasons = [c for c, k in zip(cells, keep, strict=True) if k] or cells[:1]
    # Neighbours are counted round the seasons the stack holds, in the order of the year.
    names = [n for n in names if any(m == n for _, m in seasons)]
    n_layers, pixels = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    shape = (len(seasons), n_layers, pixels)
    # Few distinct values, so medians of equal and of even counts occur often.
    levels = draw(
        st.lists(
            st.integers(1, 12),
            min_size=len(seasons) * n_layers * pixels,
            max_size=len(seasons) * n_layers * pixels,
        )
    )
    gap_share = draw(st.sampled_from([0.2, 0.5, 0.8, 0.95]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = (np.array(levels, np.float32) / np.float32(8)).reshape(shape)
    values[rng.random(shape) < gap_share] = np.nan
    order = draw(st.permutations(["same_season", "neighbour_seasons", "annual"]))
    kept: tuple[FillRule, ...] = tuple(order[: draw(st.integers(1, 3))])
    rules = GapFillRules(kept, draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    fill = draw(st.lists(st.booleans(), min_size=len(seasons), max_size=len(seasons)))
    return values, seasons, names, rules, fill


@settings(max_examples=150, deadline=None)
@given(stacks())
def test_the_kernel_equals_the_numpy_reference_of_the_rules(case: Any) -> None:
    values, seasons, names, rules, fill = case
    table = table_of(seasons)
    targets = list(range(len(seasons)))
    expected, expected_codes = reference(values, seasons, names, rules, fill)
    filled, codes = fill_gaps(values, table, targets, rules, fill=fill)
    np.testing.assert_array_equal(filled, expected)
    np.testing.assert_array_equal(codes, expected_codes)


@settings(max_examples=25, deadline=None)
@given(stacks(), st.integers(1, 3))
def test_the_dask_wrapper_equals_the_kernel_whatever_the_chunks(case: Any, chunk: int) -> None:
    values, seasons, _, rules, fill = case
    table = table_of(seasons)
    stack = da.from_array(values, chunks=(1, -1, chunk))
    for run in ([t] for t in range(len(seasons))):
        lazy, lazy_codes = fill_gaps_dask(stack, table, run, rules, fill=[fill[run[0]]])
        eager, eager_codes = fill_gaps(values, table, run, rules, fill=[fill[run[0]]])
        computed, computed_codes = da.compute(lazy, lazy_codes, scheduler="sync")
        np.testing.assert_array_equal(computed, eager)
        np.testing.assert_array_equal(computed_codes, eager_codes)


def four_seasons(years: range) -> list[tuple[int, str]]:
    return [(y, n) for y in years for n in NAMES[:4]]


def one_pixel(seasons: list[tuple[int, str]], known: dict[tuple[int, str], float]) -> np.ndarray:
    values = np.full((len(seasons), 1, 1), np.nan, np.float32)
    for k, season in enumerate(seasons):
        if season in known:
            values[k] = known[season]
    return values


def assert_fills(
    seasons: list[tuple[int, str]],
    known: dict[tuple[int, str], float],
    target: tuple[int, str],
    expected: tuple[float, int],
    rules: GapFillRules = DEFAULT_RULES,
) -> None:
    """The gap of ``target`` (all else missing but ``known``) gets ``expected`` (value, code)."""
    values = one_pixel(seasons, known)
    filled, codes = fill_gaps(values, table_of(seasons), [seasons.index(target)], rules)
    assert float(filled[0, 0, 0]) == approx(expected[0]) and int(codes[0, 0]) == expected[1]


def test_year_edges_fill_from_the_years_that_exist() -> None:
    seasons = four_seasons(range(2020, 2023))
    known = {(2021, "summer"): 0.3, (2022, "summer"): 0.5}
    assert_fills(seasons, known, (2020, "summer"), (0.3, 1))  # only y+1 exists
    assert_fills(seasons, {(2020, "summer"): 0.2}, (2022, "summer"), (0.2, 2))
    assert_fills(seasons, known, (2021, "winter"), (0.3, 6))  # no winter: the year
    two = {(2020, "summer"): 0.2, (2022, "summer"): 0.4}
    assert_fills(seasons, two, (2021, "summer"), (0.3, 1))  # median of y-1, y+1


def test_neighbouring_seasons_wrap_round_the_same_year() -> None:
    seasons = four_seasons(range(2020, 2022))
    rules = GapFillRules(("neighbour_seasons",))
    # Winter 2021's s-1 is autumn 2021 (same year), not the autumn of 2020 just before it.
    known = {(2020, "autumn"): 0.9, (2021, "autumn"): 0.1}
    assert_fills(seasons, known, (2021, "winter"), (0.1, 1), rules)
    # And autumn's s+1 is the winter of the same year.
    assert_fills(seasons, {(2021, "winter"): 0.4}, (2021, "autumn"), (0.4, 1), rules)
    both = {(2021, "spring"): 0.2, (2021, "autumn"): 0.6}
    assert_fills(seasons, both, (2021, "winter"), (0.4, 1), rules)


def test_the_whole_year_comes_after_the_neighbours_and_the_order_is_configurable() -> None:
    seasons = four_seasons(range(2020, 2022))
    known = {(2021, "summer"): 0.5, (2020, "winter"): 0.7}
    assert_fills(seasons, known, (2021, "winter"), (0.7, 1))  # same season first
    assert_fills(seasons, {(2021, "summer"): 0.5}, (2021, "winter"), (0.5, 6))
    annual_first = GapFillRules(("annual", "same_season"), same_season_years=2)
    assert annual_first.legend()[1] == "annual" and annual_first.legend()[3] == "same_season_2y"
    assert_fills(seasons, known, (2021, "winter"), (0.5, 1), annual_first)


def test_filled_values_never_feed_other_fills_and_unfillable_values_say_so() -> None:
    seasons = four_seasons(range(2020, 2021))
    values = one_pixel(seasons, {(2020, "summer"): 0.5})
    rules = GapFillRules(("neighbour_seasons",))
    filled, codes = fill_gaps(values, table_of(seasons), range(4), rules)
    # Spring and autumn are filled from summer; winter's neighbours are spring and autumn,
    # both filled, not observed: it stays missing.
    assert codes[:, 0].tolist() == [UNFILLED, 1, 0, 1]
    assert np.isnan(filled[0, 0, 0]) and filled[1, 0, 0] == filled[3, 0, 0] == np.float32(0.5)


def test_the_code_of_a_pixel_is_the_highest_its_layers_needed() -> None:
    seasons = four_seasons(range(2020, 2022))
    values = np.full((8, 2, 1), 0.25, np.float32)
    values[5, 0, 0] = np.nan  # 2021 spring, p25: filled from 2020 spring (code 1)
    values[5, 1, 0] = np.nan
    values[1, 1, 0] = np.nan  # 2020 spring's p75 is missing too: 2021 p75 from the year
    filled, codes = fill_gaps(values, table_of(seasons), [5])
    assert codes.tolist() == [[5]]  # p25 needed code 1, p75 code 5 (neighbours)
    assert filled[0, :, 0].tolist() == [0.25, 0.25]


def test_dask_tasks_read_only_the_window_however_long_the_series() -> None:
    for n_years in (6, 20):
        seasons = four_seasons(range(2000, 2000 + n_years))
        values = da.zeros((len(seasons), 3, 64, 64), np.float32, chunks=(1, 3, 32, 32))
        rules = GapFillRules(same_season_years=2)
        run = [seasons.index((2003, n)) for n in NAMES[:4]]
        filled, _ = fill_gaps_dask(values, table_of(seasons), run, rules)
        graph = dict(filled.__dask_graph__())
        keys = [k for k in graph if isinstance(k, tuple)]
        chunk_keys = {k for k in keys if k[0] == values.name}
        fills = [graph[k] for k in keys if str(k[0]).startswith("cubehub-gapfill-")]
        assert len(fills) == 4  # one task per chunk for the whole year of targets
        assert {len(_inputs(task, chunk_keys)) for task in fills} == {5 * 4}, (
            "years 2001..2005, four seasons each, whatever the length of the series"
        )


def _inputs(task: Any, keys: set[Any]) -> set[Any]:
    """The keys among ``keys`` that a graph task (a legacy tuple or a Task) reads."""
    if hasattr(task, "dependencies"):
        return set(task.dependencies) & keys
    return {a for a in task if isinstance(a, tuple) and a in keys}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"order": ()}, "at least one"),
        ({"order": ("same_season", "same_season")}, "at most once"),
        ({"order": ("nearest",)}, "same_season"),
        ({"same_season_years": 0}, "1..100"),
        ({"neighbour_seasons": True}, "integer"),
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        GapFillRules(**kwargs)


def test_bad_stacks_are_refused() -> None:
    seasons = four_seasons(range(2020, 2021))
    with pytest.raises(InputError, match="4 seasons"):
        fill_gaps(np.zeros((3, 1, 2), np.float32), table_of(seasons), [0])
    with pytest.raises(InputError, match="not in the stack"):
        fill_gaps(np.zeros((4, 1, 2), np.float32), table_of(seasons), [4])
    with pytest.raises(InputError, match="twice"):
        table_of([(2020, "winter"), (2020, "winter")])
