"""Season calendars: exact windows, boundary instants, leap years, wrapping, errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from cubehub.errors import InputError
from cubehub.seasons import (
    SeasonCalendar,
    SeasonWindow,
    calendar_from_name,
    calendar_quarters,
    custom_calendar,
    meteorological_seasons,
    months,
    odse_quarters,
)

D = dt.date


def spans(calendar: SeasonCalendar) -> list[tuple[str, dt.date, dt.date]]:
    return [(w.label, w.start, w.end) for w in calendar.windows]


def test_odse_2015_windows_are_exact() -> None:
    assert spans(odse_quarters([2015])) == [
        ("2015-winter", D(2014, 12, 2), D(2015, 3, 20)),
        ("2015-spring", D(2015, 3, 21), D(2015, 6, 24)),
        ("2015-summer", D(2015, 6, 25), D(2015, 9, 12)),
        ("2015-autumn", D(2015, 9, 13), D(2015, 12, 1)),
    ]


def test_odse_span_strings_match_layer_names() -> None:
    assert [w.odse_span() for w in odse_quarters([2015]).windows] == [
        "2014.12.02..2015.03.20",
        "2015.03.21..2015.06.24",
        "2015.06.25..2015.09.12",
        "2015.09.13..2015.12.01",
    ]


def test_multi_year_odse_tiles_time_without_gaps() -> None:
    calendar = odse_quarters([2016, 2015, 2015])  # unsorted, repeated
    assert calendar.name == "odse"
    assert len(calendar.windows) == 8
    assert calendar.time_range() == (D(2014, 12, 2), D(2016, 12, 1))
    days = np.arange(np.datetime64("2014-12-02"), np.datetime64("2016-12-02"))
    index = calendar.assign(days)
    assert (index >= 0).all()
    assert (np.diff(index) >= 0).all()
    assert np.unique(index).tolist() == list(range(8))
    assert calendar.assign([np.datetime64("2014-12-01"), np.datetime64("2016-12-02")]).tolist() == [
        -1,
        -1,
    ]


@pytest.mark.parametrize(
    ("instant", "label"),
    [
        ("2015-03-20T00:00:00", "2015-winter"),
        ("2015-03-20T23:59:59.999999999", "2015-winter"),
        ("2015-03-21T00:00:00", "2015-spring"),
        ("2015-12-01T23:59:59.999", "2015-autumn"),
        ("2015-12-02T00:00:00", "2016-winter"),
        ("2014-12-02T00:00:00", "2015-winter"),
    ],
)
def test_boundary_instants_land_in_exactly_one_season(instant: str, label: str) -> None:
    calendar = odse_quarters([2015, 2016])
    stamp = np.datetime64(instant, "ns")
    (index,) = calendar.assign(np.array([stamp]))
    assert calendar.labels[index] == label
    assert sum(w.contains(stamp) for w in calendar.windows) == 1


def test_assign_converts_aware_timestamps_to_utc() -> None:
    calendar = odse_quarters([2015])
    # 01:00 on 21 March in UTC+02:00 is still 20 March (winter) in UTC.
    east = dt.datetime(2015, 3, 21, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    # 23:00 on 20 March in UTC-03:00 is already 21 March (spring) in UTC.
    west = dt.datetime(2015, 3, 20, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    naive = dt.datetime(2015, 3, 20, 23, 59, 59)
    assert calendar.assign([east, west, naive]).tolist() == [0, 1, 0]
    index = pd.DatetimeIndex(["2015-03-21T00:30"]).tz_localize("Europe/Berlin")  # UTC+1
    assert calendar.assign(index).tolist() == [0]
    assert calendar.assign(["2015-03-20T23:30:00-01:00", "2015-06-24"]).tolist() == [1, 1]


def test_assign_keeps_shape_and_marks_nat_and_outside() -> None:
    calendar = calendar_quarters([2022])
    times = np.array(
        [["2022-01-01", "NaT"], ["2021-12-31T23:59", "2023-01-01"]], dtype="datetime64[m]"
    )
    assert calendar.assign(times).tolist() == [[0, -1], [-1, -1]]
    assert calendar.assign(np.datetime64("2022-07-01")).shape == ()


def test_calendar_quarters_and_months() -> None:
    assert spans(calendar_quarters([2022])) == [
        ("2022-Q1", D(2022, 1, 1), D(2022, 3, 31)),
        ("2022-Q2", D(2022, 4, 1), D(2022, 6, 30)),
        ("2022-Q3", D(2022, 7, 1), D(2022, 9, 30)),
        ("2022-Q4", D(2022, 10, 1), D(2022, 12, 31)),
    ]
    calendar = months([2020, 2021])
    assert calendar.labels[:3] == ("2020-01", "2020-02", "2020-03")
    assert calendar.windows[1].end == D(2020, 2, 29)
    assert calendar.windows[13].end == D(2021, 2, 28)
    assert calendar.windows[-1] == SeasonWindow("2021-12", D(2021, 12, 1), D(2021, 12, 31))
    assert calendar.starts.dtype == np.dtype("datetime64[D]")
    assert calendar.ends[0] == np.datetime64("2020-01-31")


@pytest.mark.parametrize(("year", "last_day"), [(2020, 29), (2100, 28), (2000, 29), (2015, 28)])
def test_meteorological_winter_ends_on_last_day_of_february(year: int, last_day: int) -> None:
    calendar = meteorological_seasons([year])
    djf = calendar.windows[0]
    assert (djf.label, djf.start, djf.end) == (
        f"{year}-DJF",
        D(year - 1, 12, 1),
        D(year, 2, last_day),
    )
    assert calendar.labels[1:] == (f"{year}-MAM", f"{year}-JJA", f"{year}-SON")
    assert calendar.windows[1].start == D(year, 3, 1)


def test_custom_window_wrapping_the_year_takes_the_year_it_ends_in() -> None:
    calendar = custom_calendar(
        [("wet", "04-01", "10-31"), ("dry", "11-01", "03-31")], [2021, 2022], name="tropics"
    )
    assert calendar.name == "tropics"
    assert spans(calendar) == [
        ("2021-dry", D(2020, 11, 1), D(2021, 3, 31)),
        ("2021-wet", D(2021, 4, 1), D(2021, 10, 31)),
        ("2022-dry", D(2021, 11, 1), D(2022, 3, 31)),
        ("2022-wet", D(2022, 4, 1), D(2022, 10, 31)),
    ]
    assert calendar.assign(["2021-12-25T12:00Z"]).tolist() == [2]


def test_custom_one_day_window_and_gaps() -> None:
    calendar = custom_calendar([("solstice", "06-21", "06-21")], [2022])
    assert spans(calendar) == [("2022-solstice", D(2022, 6, 21), D(2022, 6, 21))]
    assert calendar.assign(
        ["2022-06-20T23:59:59", "2022-06-21T23:59:59", "2022-06-22"]
    ).tolist() == [
        -1,
        0,
        -1,
    ]


@pytest.mark.parametrize(
    ("year", "leap"), [(2020, True), (2100, False), (2000, True), (2019, False)]
)
def test_custom_february_29_means_28_in_common_years(year: int, leap: bool) -> None:
    calendar = custom_calendar([("late-winter", "02-01", "02-29")], [year])
    assert calendar.windows[0].end == D(year, 2, 29 if leap else 28)


def test_window_contains_uses_whole_utc_days() -> None:
    window = SeasonWindow("x", D(2022, 1, 1), D(2022, 1, 31))
    assert window.contains("2022-01-31T23:59:59.999999Z")
    assert window.contains(dt.date(2022, 1, 1))
    assert not window.contains(np.datetime64("2022-02-01T00:00"))
    assert not window.contains(np.datetime64("NaT"))


def test_calendar_from_name() -> None:
    assert calendar_from_name("odse", [2015]) == odse_quarters([2015])
    assert calendar_from_name("quarters", [2015]).name == "quarters"
    assert calendar_from_name("meteorological", [2015]).labels[0] == "2015-DJF"
    assert len(calendar_from_name("months", range(2015, 2017)).windows) == 24
    with pytest.raises(InputError, match="valid names: meteorological, months, odse, quarters"):
        calendar_from_name("monsoon", [2015])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: odse_quarters([]), "years is empty"),
        (lambda: months(["2020"]), "years must be integers"),  # type: ignore[list-item]
        (lambda: months([True]), "years must be integers"),
        (lambda: months([1]), r"outside 2\.\.9999"),
        (lambda: custom_calendar([("a", "3-21", "06-01")], [2020]), 'not a "MM-DD" day'),
        (lambda: custom_calendar([("a", "02-30", "06-01")], [2020]), "not a day of the year"),
        (lambda: custom_calendar([("a", "13-01", "06-01")], [2020]), "not a day of the year"),
        (lambda: custom_calendar([("a", "01-01", 6)], [2020]), 'not a "MM-DD" day'),  # type: ignore[list-item]
        (lambda: custom_calendar([("", "01-01", "02-01")], [2020]), "non-empty string"),
        (lambda: custom_calendar([("a", "01-01")], [2020]), "triple"),  # type: ignore[list-item]
        (lambda: custom_calendar([], [2020]), "needs windows"),
        (
            lambda: custom_calendar([("a", "01-01", "06-30"), ("b", "06-30", "12-31")], [2020]),
            "overlap",
        ),
        (
            lambda: custom_calendar([("a", "01-01", "03-01"), ("a", "04-01", "05-01")], [2020]),
            "repeats window labels",
        ),
        # Read as 28 Feb in 2021, the start of 2022's window is the end of 2021's.
        (lambda: custom_calendar([("year", "02-29", "02-28")], [2021, 2022]), "overlap"),
    ],
)
def test_bad_calendars_raise_input_error(build: Callable[[], object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        build()


def test_bad_windows_and_calendars_raise_input_error() -> None:
    with pytest.raises(InputError, match=r"ends .* before it starts"):
        SeasonWindow("x", D(2022, 2, 1), D(2022, 1, 1))
    with pytest.raises(InputError, match=r"datetime\.date"):
        SeasonWindow("x", dt.datetime(2022, 1, 1), D(2022, 1, 2))
    with pytest.raises(InputError, match="sort the windows"):
        SeasonCalendar(
            "c",
            (
                SeasonWindow("b", D(2022, 3, 1), D(2022, 3, 2)),
                SeasonWindow("a", D(2022, 1, 1), D(2022, 1, 2)),
            ),
        )
    with pytest.raises(InputError, match="no windows"):
        SeasonCalendar("c", ())
    with pytest.raises(InputError, match="cannot read timestamps"):
        odse_quarters([2015]).assign(["not a date"])
    with pytest.raises(InputError, match="one timestamp"):
        SeasonWindow("x", D(2022, 1, 1), D(2022, 1, 2)).contains(["2022-01-01", "2022-01-02"])
