"""A 20-year Landsat job (the ODSE span, 2000-2020) plans from metadata alone, through a
real STAC API, in bounded memory; the metadata-only Landsat catalog it plans on."""

from __future__ import annotations

import itertools
import json
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pystac_client  # noqa: F401  (its import builds grammars for seconds: not planning)
import pytest

from cubehub.catalog.profile_match import profile_for
from cubehub.demo.servers import serve_stac_api
from cubehub.jobspec import make_job
from cubehub.pipeline import plan_job
from cubehub.testing.catalog import LANDSAT_PLATFORMS, landsat_items, landsat_scene_lonlat

YEARS = list(range(2000, 2021))


def _days(items: list[dict[str, Any]]) -> list[date]:
    return [datetime.fromisoformat(i["properties"]["datetime"]).date() for i in items]


def test_landsat_items_follow_the_platforms_and_their_16_day_revisit() -> None:
    items = landsat_items(date(1999, 12, 1), date(2022, 12, 31), paths=(195, 196), rows=(25,))
    platforms = Counter(i["properties"]["platform"] for i in items)
    assert set(platforms) == {"landsat-5", "landsat-7", "landsat-8", "landsat-9"}
    for name, spec in LANDSAT_PLATFORMS.items():
        mine = [i for i in items if i["properties"]["platform"] == name]
        assert all(i["id"].startswith(f"{spec.prefix}_L2SP_") for i in mine)
        days = _days(mine)
        assert min(days) >= spec.first and max(days) <= spec.last
        per_path = sorted(d for d, i in zip(days, mine, strict=True) if "_196025_" in i["id"])
        assert {(b - a).days for a, b in itertools.pairwise(per_path)} == {16}
    # Landsat 7 and 8 image a path 8 days apart, so together every 8 days.
    both = sorted(
        d
        for d, i in zip(_days(items), items, strict=True)
        if "_196025_" in i["id"] and i["id"][:4] in ("LE07", "LC08") and d.year == 2015
    )
    assert {(b - a).days for a, b in itertools.pairwise(both)} == {8}
    # Earth Search's layout: recognised as such, TM/ETM+ without a coastal band.
    oli = next(i for i in items if i["id"].startswith("LC08"))
    etm = next(i for i in items if i["id"].startswith("LE07_L2SP_196025_"))
    assert profile_for(oli).name == "earth-search/landsat-c2-l2"
    assert "coastal" in oli["assets"] and "coastal" not in etm["assets"]
    assert etm["properties"]["landsat:wrs_path"] == "196"
    assert etm["properties"]["grid:code"] == "WRS2-196025"


@pytest.fixture(scope="module")
def twenty_years_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A STAC API of one WRS-2-like scene's items from December 1999 to 2020 (~930)."""
    path = tmp_path_factory.mktemp("landsat-20y") / "items.json"
    items = landsat_items(date(1999, 12, 1), date(2020, 12, 31))
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    with serve_stac_api(path) as api:
        yield api.url


def test_a_20_year_landsat_job_plans_in_bounded_memory(
    twenty_years_api: str, tmp_path: Path
) -> None:
    # Search, normalisation, seasons and tiles of 21 years (plan_job); the tile graph and
    # the plan's figures over a strip of scenes: benchmarks/bench_plan.py --collection.
    west, south, east, north = landsat_scene_lonlat(196, 25)
    lon, lat = (west + east) / 2, (south + north) / 2
    job = make_job(
        stac_api=twenty_years_api,
        collection="landsat-c2-l2",
        bbox=(lon - 0.05, lat - 0.03, lon + 0.05, lat + 0.03),
        epsg=3035,
        resolution=30.0,
        bands=("red", "nir08"),
        years=YEARS,
        output=str(tmp_path / "never-written.zarr"),
    )
    tracemalloc.start()
    try:
        plan = plan_job(job)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # Every season of all 21 years has acquisitions, from the three platforms of the span.
    assert len(plan.calendar.windows) == 4 * len(YEARS)
    assert min(plan.acquisitions) > 0
    assert {w.label.split("-")[0] for w in plan.calendar.windows} == {str(y) for y in YEARS}
    platforms = Counter(i.properties["platform"] for i in plan.items)
    assert set(platforms) == {"landsat-5", "landsat-7", "landsat-8"}
    assert 850 < len(plan.items) < 1000 and plan.items_found >= len(plan.items)
    assert len(plan.tiles) == 1 and len(plan.tile_items(plan.tiles[0]).items) == len(plan.items)
    # Bounded: the metadata of ~930 items (about 20 MiB measured), far below a worker's.
    assert peak < 256 * 2**20, f"planning peaked at {peak / 2**20:.0f} MiB"
