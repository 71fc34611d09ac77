"""gap_fill on xarray composites of any calendar and any seasons, against the numpy reference
of the rules (hypothesis); which seasons an appended year makes stale."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from cubehub.compute.gapfill import UNFILLED, GapFillRules
from cubehub.errors import InputError
from cubehub.gapfill import GAP_FILL_ATTR, gap_fill, stale_seasons
from cubehub.seasons import SeasonCalendar, calendar_from_name, custom_calendar
from cubehub.testing.gapfill import reference_dataset

CALENDARS = ("odse", "meteorological", "quarters", "wrapping")


def calendar(name: str, years: list[int]) -> SeasonCalendar:
    if name == "wrapping":  # a custom window across the new year, labelled by the year it ends in
        return custom_calendar([("dry", "11-15", "03-31"), ("wet", "04-01", "10-31")], years)
    return calendar_from_name(name, years)


def composite(cal: SeasonCalendar, values: dict[str, np.ndarray]) -> xr.Dataset:
    """A composite shaped as seasonal_composite gives it, from (S, 2, 4, 3) arrays."""
    s = len(cal.windows)
    data: dict[str, Any] = {
        name: (("season", "percentile", "y", "x"), v) for name, v in values.items()
    }
    data["valid_count"] = (
        ("season", "y", "x"),
        np.arange(s * 12, dtype=np.uint16).reshape(s, 4, 3),
    )
    return xr.Dataset(
        data,
        coords={
            "season": np.array(cal.labels, dtype=object),
            "season_start": ("season", pd.to_datetime([w.start for w in cal.windows])),
            "percentile": [25.0, 75.0],
            "y": np.arange(4.0),
            "x": np.arange(3.0),
        },
    )


@st.composite
def composites(draw: Any) -> tuple[xr.Dataset, list[str], GapFillRules, list[str]]:
    name = draw(st.sampled_from(CALENDARS))
    years = sorted(draw(st.sets(st.integers(2018, 2024), min_size=1, max_size=4)))
    full = calendar(name, years)
    chosen = draw(st.sets(st.sampled_from(full.names), min_size=1))
    cal = full.select(sorted(chosen, key=full.names.index))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    shape = (len(cal.windows), 2, 4, 3)
    gaps = draw(st.sampled_from([0.3, 0.7, 0.95]))
    values = {}
    for var in ("red", "NDVI"):
        v = (rng.integers(1, 9, shape) / 16).astype(np.float32)
        # Mostly whole pixel-seasons missing (as composites have them), some single layers.
        whole = rng.random((shape[0], 1, *shape[2:])) < gaps
        v[whole | (rng.random(shape) < 0.1)] = np.nan
        values[var] = v
    order = draw(st.permutations(["same_season", "neighbour_seasons", "annual"]))
    rules = GapFillRules(tuple(order[: draw(st.integers(1, 3))]), draw(st.integers(1, 3)), 1)
    leave = draw(st.lists(st.sampled_from(cal.labels), unique=True, max_size=2))
    return composite(cal, values), list(full.names), rules, leave


@settings(max_examples=60, deadline=None)
@given(composites())
def test_gap_fill_equals_the_reference_on_any_calendar_and_seasons(case: Any) -> None:
    ds, names, rules, leave = case
    expected = reference_dataset(ds, names, rules, leave)
    for data in (ds, ds.chunk({"season": 1, "y": 2})):
        out = gap_fill(data, rules, leave_unfilled=leave).compute()
        for var, (values, codes) in expected.items():
            np.testing.assert_array_equal(out[var].values, values, err_msg=var)
            np.testing.assert_array_equal(out[f"{var}_fill_source"].values, codes, err_msg=var)
        xr.testing.assert_identical(out["valid_count"], ds["valid_count"])


def test_the_fill_source_layer_says_what_each_code_means() -> None:
    cal = calendar("odse", [2021, 2022])
    red = np.full((8, 2, 4, 3), 0.25, np.float32)
    red[1] = np.nan
    out = gap_fill(composite(cal, {"red": red}))
    layer = out["red_fill_source"]
    assert layer.dtype == np.uint8 and layer.dims == ("season", "y", "x")
    assert int(layer.sel(season="2021-spring").max()) == 1 and int(layer.max()) == 1
    meanings = dict(
        zip(layer.attrs["flag_values"], layer.attrs["flag_meanings"].split(), strict=True)
    )
    assert meanings[0] == "observed" and meanings[1] == "same_season_1y"
    assert meanings[6] == "annual" and meanings[UNFILLED] == "unfilled"
    assert json.loads(out.attrs[GAP_FILL_ATTR])["order"] == [
        "same_season",
        "neighbour_seasons",
        "annual",
    ]


def test_an_appended_year_makes_the_seasons_within_the_window_stale() -> None:
    cal = calendar("odse", [2018, 2019, 2020, 2021])
    ds = composite(cal, {"red": np.zeros((16, 2, 4, 3), np.float32)})
    before = [label for label in cal.labels if not label.startswith("2021")]
    one_year = GapFillRules(same_season_years=1)
    assert stale_seasons(ds, before, one_year) == [
        label for label in before if label.startswith("2020")
    ]
    assert stale_seasons(ds, before, GapFillRules(same_season_years=2))[0] == "2019-winter"
    # Without the same-season rule a season reads only its own year: nothing goes stale.
    assert stale_seasons(ds, before, GapFillRules(("neighbour_seasons", "annual"))) == []
    assert stale_seasons(ds, before, one_year, leave_unfilled=["2020-summer"]) == [
        "2020-winter",
        "2020-spring",
        "2020-autumn",
    ]


def test_bad_composites_are_refused() -> None:
    cal = calendar("odse", [2021])
    ds = composite(cal, {"red": np.zeros((4, 2, 4, 3), np.float32)})
    with pytest.raises(InputError, match="season_start"):
        gap_fill(ds.drop_vars("season_start"))
    with pytest.raises(InputError, match="lacks"):
        gap_fill(ds, leave_unfilled=["2030-summer"])
    with pytest.raises(InputError, match="no variable"):
        gap_fill(ds[["valid_count"]])
    with pytest.raises(InputError, match="<year>-<name>"):
        gap_fill(ds.assign_coords(season=["a", "b", "c", "d"]))
