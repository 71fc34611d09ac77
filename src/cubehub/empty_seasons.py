"""Seasons without data are data: the warning (or, on request, the refusal) that names them
and says what emptied them.

A season can come out empty in two ways, and the message says which:

* no acquisition at all: none in the catalog there, or the cloud filter (``max_cloud_cover``)
  removed every item of it; found from metadata by :func:`check_empty_seasons` before any
  pixel is read (one more search, without the filter, and only when a season is empty);
* acquisitions, but not one clear pixel: the cloud mask removed every observation; found
  from the written counts by :func:`warn_cloud_masked`.

Either way the season's layers are NaN and ``valid_count`` 0; ``on_empty_season`` says
whether gap filling fills it (``fill``), leaves it (``nan``) or the job is refused
(``error``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pystac

from cubehub.catalog.search import search_items
from cubehub.errors import EmptySearchError, EmptySeasonWarning, InputError
from cubehub.jobspec import CompositeJob
from cubehub.seasons import SeasonCalendar

__all__ = ["check_empty_seasons", "warn_cloud_masked"]


def search_job_items(
    job: CompositeJob, calendar: SeasonCalendar, *, max_cloud_cover: float | None
) -> list[pystac.Item]:
    """The job's search over the calendar's whole time range, with ``max_cloud_cover`` (a
    percentage, or None for every scene)."""
    first, last = calendar.time_range()
    return search_items(
        job.stac_api,
        collections=[job.collection],
        bbox=job.bbox,
        datetime=f"{first.isoformat()}/{last.isoformat()}",
        max_cloud_cover=max_cloud_cover,
        filter=job.filter,
    )


def check_empty_seasons(job: CompositeJob, calendar: SeasonCalendar, counts: np.ndarray) -> None:
    """Warn about seasons of ``calendar`` without acquisitions (``counts``: per window), or
    raise under ``on_empty_season: error``.

    Raises:
        InputError: an empty season and ``on_empty_season: error``.
        EmptySearchError: every season is empty.
    """
    empty = [w for w, n in zip(calendar.windows, counts, strict=True) if n == 0]
    if not empty:
        return
    if len(empty) == len(calendar.windows):
        raise EmptySearchError(
            f"no season of the job ({', '.join(calendar.names)}) has an acquisition in the "
            "items found; widen the area or the years"
        )
    before_filter = np.zeros(len(calendar.windows), np.int64)
    if job.max_cloud_cover is not None:
        try:
            unfiltered = search_job_items(job, calendar, max_cloud_cover=None)
        except EmptySearchError:
            unfiltered = []
        before_filter = calendar.counts([i.datetime for i in unfiltered])
    position = {w.label: k for k, w in enumerate(calendar.windows)}
    reasons = []
    for window in empty:
        removed = int(before_filter[position[window.label]])
        if removed:
            why = (
                f"the cloud filter emptied it (max_cloud_cover {job.max_cloud_cover:g} removed "
                f"its {removed} item(s))"
            )
        elif job.max_cloud_cover is not None:
            why = "not the cloud filter: the catalog has no item there"
        else:
            why = "no cloud filter is set: the catalog has no item there"
        reasons.append(f"{window.label} ({window.start}..{window.end}): {why}")
    text = f"season(s) without acquisitions: {'; '.join(reasons)}"
    policy = job.empty_season_policy
    if policy == "error":
        raise InputError(
            f"{text}. Set on_empty_season: nan to compute the other seasons (or fill, with "
            "gap_fill), or raise max_cloud_cover"
        )
    outcome = {
        "nan": "their layers are NaN with valid_count 0",
        "fill": "their layers are NaN with valid_count 0 in the composites, and gap filled",
    }[policy]
    warnings.warn(f"{text}; {outcome}", EmptySeasonWarning, stacklevel=3)


def warn_cloud_masked(
    calendar: SeasonCalendar, acquisitions: Sequence[int], mean_valid: Mapping[str, float]
) -> None:
    """Warn about seasons that had acquisitions but not one clear pixel in the store
    (``mean_valid``: season label -> mean ``valid_count``)."""
    masked = [
        f"{w.label} ({n} acquisition(s))"
        for w, n in zip(calendar.windows, acquisitions, strict=True)
        if n and mean_valid.get(w.label) == 0.0
    ]
    if masked:
        warnings.warn(
            f"season(s) without a clear observation at any pixel: {', '.join(masked)}; the "
            "cloud mask emptied them: their layers are NaN with valid_count 0",
            EmptySeasonWarning,
            stacklevel=3,
        )
