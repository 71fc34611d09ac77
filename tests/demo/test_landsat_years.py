"""A 3-year ODSE job on the Landsat demo archive, year after year into one store, resumable
(issue 14 part 7): the first year is interrupted after some tiles and rerun, which writes
only the missing ones; the next two years are appended. Every pixel of every year is then
checked against that year's truth.

The three years are three archives of the same land under other weather, each with the
satellites flying then (2021: Landsat 7, 8 and 9; 2022 and 2023: 8 and 9).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import xarray as xr
from distributed import Client

from cubehub.demo import DemoServers, start_demo
from cubehub.errors import InputError
from cubehub.jobspec import CompositeJob, make_job
from cubehub.output.completion import Completion
from cubehub.output.layout import COMPLETE_DIR
from cubehub.output.zarr_store import CompositeStore
from cubehub.pipeline import run_job
from cubehub.testing.landsat_truth import assert_year_matches_truth

YEARS = (2021, 2022, 2023)
SEASONS = ("winter", "spring", "summer", "autumn")
SIZE, TILE = 64, 32  # the smallest tile is 32 px
#: The job covers the window's northern half: two tiles. Every tile reads every item, so
#: tiles and bands set the test's time (about 2 min on 2 busy cores).
ROWS = 32
BANDS = ("red", "nir08", "lwir11")
TILES = ["r0000c0000", "r0000c0001"]
FIRST_RUN = ["r0000c0001"]  # the run that was interrupted


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServers]:
    root = tmp_path_factory.mktemp("landsat-years")
    with start_demo(root / "archive", size=SIZE, years=YEARS, collection="landsat-c2-l2") as d:
        yield d


def year_job(demo: DemoServers, year: int, output: Path) -> CompositeJob:
    """One year of the job on the window's northern half, with the collection's defaults
    (30 m, its QA_PIXEL mask) but three of the ODSE bands."""
    x0, _, x1, y1 = demo.bounds
    return make_job(
        stac_api=demo.stac_api,
        collection="landsat-c2-l2",
        bbox=demo.bbox,
        bounds=(x0, y1 - ROWS * demo.archive.resolution, x1, y1),
        epsg=demo.epsg,
        years=[year],
        bands=BANDS,
        chunk_size=TILE,
        tile_size=TILE,
        output=str(output),
    )


def recorded(url: Path) -> dict[str, frozenset[str]]:
    """Season label -> tiles recorded complete in the store."""
    done = Completion.from_paths(str(p) for p in (url / COMPLETE_DIR).rglob("*.json")).done
    return {season: frozenset(tiles) for season, tiles in done.items()}


def test_each_year_has_the_satellites_flying_then(demo: DemoServers) -> None:
    assert sorted(demo.archives) == list(YEARS)
    flying = {year: set(demo.truth(year).attrs["platform"]) for year in YEARS}
    assert flying[2021] == {"landsat-7", "landsat-8", "landsat-9"}
    assert flying[2022] == flying[2023] == {"landsat-8", "landsat-9"}
    # The same land every year, other weather.
    land = [demo.truth(year)["landcover"].values for year in YEARS]
    assert (land[0] == land[1]).all() and (land[0] == land[2]).all()
    clear = [demo.truth(year)["clear"].values.mean() for year in YEARS]
    assert len(set(clear)) == 3


def test_a_three_year_job_runs_year_after_year_into_one_store_resumably(
    demo: DemoServers, local_client: Client, tmp_path: Path
) -> None:
    url = tmp_path / "landsat.zarr"
    first = year_job(demo, YEARS[0], url)
    assert first.resolution == 30.0 and first.mask.reject_bits == (0, 1, 2, 3, 4)
    labels = {year: [f"{year}-{s}" for s in SEASONS] for year in YEARS}
    every_label = [label for year in YEARS for label in labels[year]]

    # The first year, interrupted after two of its four tiles.
    part = run_job(first, local_client, tiles=FIRST_RUN, show_progress=False)
    assert sorted(part.tiles_written) == FIRST_RUN
    assert recorded(url) == dict.fromkeys(labels[2021], frozenset(FIRST_RUN))
    # Rerun whole: only the missing tiles are written.
    rest = run_job(first, local_client, show_progress=False)
    assert sorted(rest.tiles_written) == sorted(set(TILES) - set(FIRST_RUN))
    assert sorted(rest.tiles_skipped) == FIRST_RUN
    assert CompositeStore(str(url)).completed_tiles() == set(TILES)

    # The next years, appended to the same store.
    for year in YEARS[1:]:
        result = run_job(year_job(demo, year, url), local_client, show_progress=False)
        assert sorted(result.tiles_written) == TILES and result.tiles_skipped == []
    assert recorded(url) == dict.fromkeys(every_label, frozenset(TILES))
    assert CompositeStore(str(url)).completed_tiles() == set(TILES)

    out = xr.open_zarr(url)
    assert [str(s) for s in out.season.values] == every_label
    for year in YEARS:
        truth = demo.truth(year).isel(y=slice(0, ROWS)).load()
        assert_year_matches_truth(out, truth, year, bands=BANDS)
        p50 = out["lwir11"].sel(percentile=50.0)
        summer, winter = (float(p50.sel(season=f"{year}-{s}").mean()) for s in ("summer", "winter"))
        assert 285 < summer < 310 and 260 < winter < 285, f"{year}: kelvin"
    assert out["lwir11"].attrs["units"] == "K"


def test_revisit_days_is_refused_for_landsat(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="revisit_days is for the Sentinel-2 demo"):
        start_demo(tmp_path, collection="landsat-c2-l2", revisit_days=16)
    with pytest.raises(InputError, match="no archive of collection 'sentinel-1'"):
        start_demo(tmp_path, collection="sentinel-1")
    with pytest.raises(InputError, match="multiple of 16"):
        start_demo(tmp_path, collection="landsat-c2-l2", size=40)
    assert not list(tmp_path.iterdir())  # refused before anything was built
