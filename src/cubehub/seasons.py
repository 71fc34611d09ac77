"""Season calendars: named date windows that observations are grouped into.

Conventions, shared by every calendar here:

* **UTC calendar days.** A window runs from ``start`` to ``end``, both inclusive, and
  contains every instant from ``start`` 00:00:00 to ``end`` 23:59:59.999... UTC. Timestamps
  without a time zone (naive ``datetime``, ``numpy.datetime64``) are taken to be UTC;
  aware ones are converted to UTC first.
* **Labels** are ``"<year>-<name>"``, where the year is the one the window *ends* in:
  ``"2022-winter"`` (ODSE), ``"2022-Q1"``, ``"2022-DJF"``, ``"2022-03"``. A window that
  wraps the year, such as ODSE winter (2 Dec 2021 .. 20 Mar 2022) or meteorological
  winter (1 Dec 2021 .. 28 Feb 2022), carries the label of the year of its January.
* **Leap days.** A custom ``"02-29"`` bound in a year without 29 February means 28
  February; meteorological winter ends on the last day of February.
* Windows of a calendar are sorted by start and never overlap; days between windows
  belong to none (:meth:`SeasonCalendar.assign` gives ``-1``).

>>> cal = odse_quarters([2015])
>>> [w.odse_span() for w in cal.windows][0]
'2014.12.02..2015.03.20'
>>> cal.assign(["2015-03-20T23:59:59Z", "2015-03-21T00:00:00Z", "2015-12-02"]).tolist()
[0, 1, -1]
"""

from __future__ import annotations

import datetime
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cubehub.errors import InputError

__all__ = [
    "SeasonCalendar",
    "SeasonWindow",
    "calendar_from_name",
    "calendar_quarters",
    "custom_calendar",
    "meteorological_seasons",
    "months",
    "odse_quarters",
    "odse_span",
    "split_label",
    "years_not_begun",
]

_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")


@dataclass(frozen=True)
class SeasonWindow:
    """One labelled window of whole UTC days, both ends inclusive."""

    label: str
    """Name of the window, e.g. ``"2022-winter"``; unique within a calendar."""
    start: datetime.date
    """First day, inclusive (UTC calendar day)."""
    end: datetime.date
    """Last day, inclusive (UTC calendar day); equal to ``start`` for a one-day window."""

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise InputError(f"season window label must be a non-empty string, got {self.label!r}")
        for field in ("start", "end"):
            value = getattr(self, field)
            if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
                raise InputError(
                    f"season window {self.label!r}: {field} must be a datetime.date "
                    f"(a whole UTC day), got {value!r}"
                )
        if self.end < self.start:
            raise InputError(
                f"season window {self.label!r} ends ({self.end}) before it starts "
                f"({self.start}); swap the bounds"
            )

    def contains(self, timestamp: Any) -> bool:
        """Whether ``timestamp`` (UTC if naive) falls on a day from ``start`` to ``end``."""
        days = _utc_days(timestamp)
        if days.size != 1:
            raise InputError(
                f"SeasonWindow.contains takes one timestamp, got {days.size}; "
                "use SeasonCalendar.assign for many"
            )
        day = days.reshape(())
        return bool(np.datetime64(self.start, "D") <= day <= np.datetime64(self.end, "D"))

    def odse_span(self) -> str:
        """The window as ODSE layer names write it: ``"2014.12.02..2015.03.20"``."""
        return odse_span(self.start, self.end)


@dataclass(frozen=True)
class SeasonCalendar:
    """A named sequence of :class:`SeasonWindow`, sorted by start and non-overlapping."""

    name: str
    """Name of the calendar, e.g. ``"odse"``."""
    windows: tuple[SeasonWindow, ...]
    """The windows, sorted by start; any sequence is stored as a tuple."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "windows", tuple(self.windows))
        if not self.windows:
            raise InputError(f"season calendar {self.name!r} has no windows; give at least one")
        labels = [w.label for w in self.windows]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise InputError(
                f"season calendar {self.name!r} repeats window labels {duplicates}; "
                "labels must be unique"
            )
        for before, after in zip(self.windows, self.windows[1:], strict=False):
            if after.start < before.start:
                raise InputError(
                    f"season calendar {self.name!r}: window {after.label!r} starts "
                    f"({after.start}) before {before.label!r} ({before.start}); "
                    "sort the windows by start"
                )
            if after.start <= before.end:
                raise InputError(
                    f"season calendar {self.name!r}: windows {before.label!r} "
                    f"({before.start}..{before.end}) and {after.label!r} "
                    f"({after.start}..{after.end}) overlap; a day may belong to one window only"
                )

    @property
    def labels(self) -> tuple[str, ...]:
        """Window labels in order, for a ``season`` coordinate."""
        return tuple(w.label for w in self.windows)

    @property
    def names(self) -> tuple[str, ...]:
        """The season names of the calendar in the order of the year, each once
        (``("winter", "spring", "summer", "autumn")`` for ODSE)."""
        return tuple(dict.fromkeys(split_label(label)[1] for label in self.labels))

    def select(self, names: Iterable[str]) -> SeasonCalendar:
        """The windows whose season name (the label without its year) is one of ``names``.

        >>> odse_quarters([2021, 2022]).select(["summer"]).labels
        ('2021-summer', '2022-summer')

        Raises:
            InputError: a name the calendar does not have (the valid names are listed).
        """
        wanted = list(names)
        unknown = [n for n in wanted if n not in self.names]
        if unknown or not wanted:
            raise InputError(
                f"season(s) {', '.join(map(str, unknown)) or '(none)'} not in calendar "
                f"{self.name!r}; choose from {', '.join(self.names)}"
            )
        kept = tuple(w for w in self.windows if split_label(w.label)[1] in wanted)
        return SeasonCalendar(self.name, kept)

    @property
    def starts(self) -> np.ndarray:
        """First day of each window as ``datetime64[D]``."""
        return np.array([w.start for w in self.windows], dtype="datetime64[D]")

    @property
    def ends(self) -> np.ndarray:
        """Last day (inclusive) of each window as ``datetime64[D]``."""
        return np.array([w.end for w in self.windows], dtype="datetime64[D]")

    def time_range(self) -> tuple[datetime.date, datetime.date]:
        """First day of the first window and last day of the last, for a STAC search."""
        return self.windows[0].start, self.windows[-1].end

    def counts(self, times: Any) -> np.ndarray:
        """How many of ``times`` fall in each window: int64, one per window (0: an empty
        season). ``times`` as for :meth:`assign`."""
        assigned = self.assign(times).ravel()
        return np.bincount(assigned[assigned >= 0], minlength=len(self.windows)).astype(np.int64)

    def assign(self, times: Any) -> np.ndarray:
        """Index of the window each timestamp falls in, ``-1`` where none (or NaT).

        ``times`` may be a ``numpy.datetime64`` array, a pandas index or series (aware or
        naive), a sequence of ``datetime``/``date``/ISO strings, or one such scalar. Naive
        values are UTC. Returns ``int64`` with the shape of ``times``.
        """
        days = _utc_days(times)
        index = np.searchsorted(self.starts, days, side="right") - 1
        inside = (index >= 0) & ~np.isnat(days)
        inside &= days <= self.ends[np.maximum(index, 0)]
        return np.where(inside, index, -1).astype(np.int64)


def _utc_days(times: Any) -> np.ndarray:
    """UTC calendar day of each timestamp as ``datetime64[D]`` (floor, NaT kept)."""
    values = np.asarray(times)
    if values.dtype.kind == "M":  # numpy datetimes are naive: already UTC by convention
        return values.astype("datetime64[D]")
    try:
        stamps = pd.to_datetime(values.ravel(), utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError) as err:
        reason = str(err).splitlines()[0].split(". You might")[0]
        raise InputError(
            f"cannot read timestamps {times!r} ({reason}); pass datetimes, numpy "
            "datetime64 or ISO 8601 strings"
        ) from err
    days: np.ndarray = stamps.tz_localize(None).to_numpy().astype("datetime64[D]")
    return days.reshape(values.shape)


def _validate_years(years: Iterable[int]) -> list[int]:
    """Sorted unique years; each must be an integer that leaves room for a wrap."""
    given = [years] if isinstance(years, int) else list(years)
    try:
        checked = {operator.index(y) for y in given if not isinstance(y, bool)}
    except TypeError as err:
        raise InputError(f"years must be integers such as [2021, 2022], got {given!r}") from err
    if any(isinstance(y, bool) for y in given):
        raise InputError(f"years must be integers such as [2021, 2022], got {given!r}")
    if not checked:
        raise InputError("years is empty: pass at least one year, e.g. [2022]")
    outside = sorted(y for y in checked if not datetime.MINYEAR < y <= datetime.MAXYEAR)
    if outside:
        raise InputError(f"years {outside} are outside {datetime.MINYEAR + 1}..{datetime.MAXYEAR}")
    return sorted(checked)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _day(year: int, month: int, day: int) -> datetime.date:
    """The date, reading 29 February as 28 February in a year without it."""
    if month == 2 and day == 29 and not _is_leap(year):
        day = 28
    return datetime.date(year, month, day)


def _last_of_month(year: int, month: int) -> datetime.date:
    first_of_next = datetime.date(year + month // 12, month % 12 + 1, 1)
    return first_of_next - datetime.timedelta(days=1)


def odse_quarters(years: Iterable[int]) -> SeasonCalendar:
    """The four ODSE / GeoHarmonizer seasons of each year (calendar name ``"odse"``).

    winter: 2 Dec of the previous year .. 20 Mar; spring: 21 Mar .. 24 Jun;
    summer: 25 Jun .. 12 Sep; autumn: 13 Sep .. 1 Dec. Labels ``"2015-winter"`` etc.;
    consecutive years tile the time line without gaps.
    """
    windows = []
    for y in _validate_years(years):
        windows += [
            SeasonWindow(f"{y}-winter", datetime.date(y - 1, 12, 2), datetime.date(y, 3, 20)),
            SeasonWindow(f"{y}-spring", datetime.date(y, 3, 21), datetime.date(y, 6, 24)),
            SeasonWindow(f"{y}-summer", datetime.date(y, 6, 25), datetime.date(y, 9, 12)),
            SeasonWindow(f"{y}-autumn", datetime.date(y, 9, 13), datetime.date(y, 12, 1)),
        ]
    return SeasonCalendar("odse", tuple(windows))


def calendar_quarters(years: Iterable[int]) -> SeasonCalendar:
    """Calendar quarters Jan-Mar .. Oct-Dec, labelled ``"2022-Q1"`` .. ``"2022-Q4"``."""
    windows = [
        SeasonWindow(f"{y}-Q{q + 1}", datetime.date(y, 3 * q + 1, 1), _last_of_month(y, 3 * q + 3))
        for y in _validate_years(years)
        for q in range(4)
    ]
    return SeasonCalendar("quarters", tuple(windows))


def meteorological_seasons(years: Iterable[int]) -> SeasonCalendar:
    """DJF, MAM, JJA, SON, labelled ``"2022-DJF"`` etc.

    DJF runs from 1 December of the previous year to the last day of February (28 or
    29) and carries the year of its January and February.
    """
    windows = []
    for y in _validate_years(years):
        windows += [
            SeasonWindow(f"{y}-DJF", datetime.date(y - 1, 12, 1), _last_of_month(y, 2)),
            SeasonWindow(f"{y}-MAM", datetime.date(y, 3, 1), datetime.date(y, 5, 31)),
            SeasonWindow(f"{y}-JJA", datetime.date(y, 6, 1), datetime.date(y, 8, 31)),
            SeasonWindow(f"{y}-SON", datetime.date(y, 9, 1), datetime.date(y, 11, 30)),
        ]
    return SeasonCalendar("meteorological", tuple(windows))


def months(years: Iterable[int]) -> SeasonCalendar:
    """Calendar months, labelled ``"2022-01"`` .. ``"2022-12"``."""
    windows = [
        SeasonWindow(f"{y}-{m:02d}", datetime.date(y, m, 1), _last_of_month(y, m))
        for y in _validate_years(years)
        for m in range(1, 13)
    ]
    return SeasonCalendar("months", tuple(windows))


def _parse_month_day(text: object, where: str) -> tuple[int, int]:
    match = _MONTH_DAY.match(text) if isinstance(text, str) else None
    if match is None:
        raise InputError(f'{where}: {text!r} is not a "MM-DD" day such as "03-21"')
    month, day = int(match[1]), int(match[2])
    if not 1 <= month <= 12 or not 1 <= day <= _last_of_month(2000, month).day:
        raise InputError(f'{where}: {text!r} is not a day of the year ("MM-DD")')
    return month, day


def custom_calendar(
    windows: Sequence[tuple[str, str, str]], years: Iterable[int], *, name: str = "custom"
) -> SeasonCalendar:
    """Windows given as ``(name, "MM-DD", "MM-DD")`` (start, end inclusive), every year.

    A window whose end comes before its start in the year wraps: it starts in the
    previous year and carries the label of the year it ends in (``"2022-<name>"``).
    Equal bounds make a one-day window. ``"02-29"`` means 28 February in a year without
    29 February. Windows must not overlap once laid out on the years given.

    >>> cal = custom_calendar([("dry", "11-15", "03-31")], [2021])
    >>> cal.windows[0].odse_span()
    '2020.11.15..2021.03.31'
    """
    if isinstance(windows, str) or not windows:
        raise InputError(
            f'custom calendar needs windows such as [("wet", "04-01", "10-31")], got {windows!r}'
        )
    specs = []
    for position, spec in enumerate(windows):
        where = f"custom window {position}"
        if not isinstance(spec, Sequence) or isinstance(spec, str) or len(spec) != 3:
            raise InputError(f'{where}: {spec!r} is not a ("name", "MM-DD", "MM-DD") triple')
        label, start_text, end_text = spec
        if not isinstance(label, str) or not label:
            raise InputError(f"{where}: the name must be a non-empty string, got {label!r}")
        start, end = _parse_month_day(start_text, where), _parse_month_day(end_text, where)
        specs.append((label, start, end))
    laid_out = [
        SeasonWindow(
            f"{y}-{label}",
            _day(y - 1 if end < start else y, *start),
            _day(y, *end),
        )
        for y in _validate_years(years)
        for label, start, end in specs
    ]
    return SeasonCalendar(name, tuple(sorted(laid_out, key=lambda w: w.start)))


_NAMED = {
    "odse": odse_quarters,
    "quarters": calendar_quarters,
    "meteorological": meteorological_seasons,
    "months": months,
}


def years_not_begun(name: str, years: Iterable[int], today: datetime.date) -> list[int]:
    """Those of ``years`` whose every season of calendar ``name`` starts after ``today``.

    >>> years_not_begun("odse", [2022, 2031], datetime.date(2026, 12, 1))
    [2031]
    >>> years_not_begun("odse", [2027], datetime.date(2026, 12, 2))  # winter 2027 began
    []
    """
    return [y for y in years if calendar_from_name(name, [y]).windows[0].start > today]


def calendar_from_name(name: str, years: Iterable[int]) -> SeasonCalendar:
    """The named calendar over ``years``: ``"odse"``, ``"quarters"``, ``"meteorological"``
    or ``"months"``."""
    try:
        build = _NAMED[name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown season calendar {name!r}; valid names: {', '.join(sorted(_NAMED))}"
        ) from None
    return build(years)


def split_label(label: str) -> tuple[int, str]:
    """The year and the season name of a label: ``"2022-winter"`` -> ``(2022, "winter")``.

    Raises:
        InputError: a label that is not ``"<year>-<name>"`` (every calendar here makes those).
    """
    year, sep, name = str(label).partition("-")
    if not sep or not name or not year.isdigit():
        raise InputError(
            f"season label {label!r} is not '<year>-<name>' (e.g. '2022-winter'); cubehub's "
            "calendars label every window so"
        )
    return int(year), name


def odse_span(start: Any, end: Any) -> str:
    """A season window as ODSE layer names write it, first and last day inclusive.

    ``start`` and ``end``: dates, datetimes or ``numpy.datetime64`` (days are UTC).

    >>> odse_span(np.datetime64("2014-12-02"), np.datetime64("2015-03-20T00:00"))
    '2014.12.02..2015.03.20'
    """
    first, last = (
        np.datetime_as_string(np.datetime64(t, "D"), unit="D").replace("-", ".")
        for t in (start, end)
    )
    return f"{first}..{last}"
