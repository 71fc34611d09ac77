"""Gap filling on the synthetic archive (three years of the same land under other weather),
through the real pipeline: accuracy against withheld truth per band and rule, a job whose
summer of 2022 the cloud filter empties run end to end with gap filling and its quicklook,
and the empty-season errors and warnings.

Withholding the clear observations of a pixel-season leaves its composite without a value,
exactly as a cloud over all of them does; so the test withholds composite values of random
pixel-seasons of a store computed by the pipeline, fills them, and compares with the
values the withheld observations gave.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from distributed import Client, get_task_stream

from cubehub.compute.gapfill import DEFAULT_RULES, GapFillRules
from cubehub.demo import DemoServers, start_demo
from cubehub.demo.servers import serve_stac_api
from cubehub.errors import EmptySeasonWarning, InputError
from cubehub.gapfill import gap_fill
from cubehub.jobspec import make_job
from cubehub.output.open import open_composite
from cubehub.output.quicklook import FILL_MARK, quicklook_figure, write_quicklook
from cubehub.pipeline import run_job

BANDS = ("green", "red", "nir")
YEARS = (2021, 2022, 2023)
#: Three pipeline runs of three years each: minutes, more on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
#: Share of the pixel-seasons whose observations are withheld.
WITHHELD = 0.15


@pytest.fixture(scope="module")
def client(local_client: Client) -> Client:
    return local_client


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServers]:
    root = tmp_path_factory.mktemp("gapfill-archive")
    with start_demo(root / "archive", size=32, years=YEARS, revisit_days=16) as servers:
        yield servers


def fields(demo: DemoServers, **more: Any) -> dict[str, Any]:
    return {
        "stac_api": demo.stac_api,
        "bbox": demo.bbox,
        "bounds": demo.bounds,
        "epsg": demo.epsg,
        "years": YEARS,
        "bands": BANDS,
        "indices": ("NDVI",),
        "chunk_size": 32,
        "tile_size": 32,
        **more,
    }


@pytest.fixture(scope="module")
def observed(demo: DemoServers, client: Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The three-year composite store of every clear observation."""
    url = str(tmp_path_factory.mktemp("observed") / "composite.zarr")
    run_job(make_job(**fields(demo), output=url), client, show_progress=False)
    return url


def rmse(a: xr.DataArray, b: xr.DataArray, where: xr.DataArray) -> float:
    err = (a - b).where(where)
    return float(np.sqrt((err**2).mean()))


def test_filled_values_beat_the_annual_median_on_withheld_truth(observed: str) -> None:
    truth = open_composite(observed).load()
    assert [str(s) for s in truth.season.values][::4] == [
        "2021-winter",
        "2022-winter",
        "2023-winter",
    ]
    finite = truth[list(BANDS)].to_array().notnull().all(("variable", "percentile"))
    rng = np.random.default_rng(0)
    held = finite & xr.DataArray(rng.random(finite.shape) < WITHHELD, dims=finite.dims)
    withheld = truth.copy()
    for name in (*BANDS, "NDVI"):
        withheld[name] = truth[name].where(~held)
    runs = {
        "TMWM (default)": DEFAULT_RULES,
        "same season only": GapFillRules(("same_season",)),
        "neighbour seasons only": GapFillRules(("neighbour_seasons",)),
        "annual median": GapFillRules(("annual",)),
    }
    table: dict[str, dict[str, float]] = {}
    coverage: dict[str, float] = {}
    for label, rules in runs.items():
        out = gap_fill(withheld, rules)
        p50 = out.sel(percentile=50)
        coverage[label] = float(p50["red"].notnull().where(held).mean())
        table[label] = {b: rmse(p50[b], truth[b].sel(percentile=50), held) for b in BANDS}
        if label == "TMWM (default)":
            codes = out["red_fill_source"]
            legend = rules.legend()
            for code in sorted(int(c) for c in np.unique(codes.where(held).fillna(0)) if c):
                rows = held & (codes == code)
                table[f"  filled by {legend[code]} ({int(rows.sum())} px)"] = {
                    b: rmse(p50[b], truth[b].sel(percentile=50), rows) for b in BANDS
                }
    print(f"\nRMSE of p50 reflectance at {int(held.sum())} withheld pixel-seasons (of {held.size})")
    print(f"{'':44}" + "".join(f"{b:>9}" for b in BANDS) + "   filled")
    for label, row in table.items():
        share = f"{100 * coverage[label]:7.1f} %" if label in coverage else ""
        print(f"{label:44}" + "".join(f"{row[b]:9.4f}" for b in BANDS) + f"  {share}")
    print(f"{'left NaN':44}" + "".join(f"{'n/a':>9}" for _ in BANDS) + f"  {0.0:7.1f} %")
    assert coverage["TMWM (default)"] == 1.0, "every withheld pixel-season is filled"
    for band in BANDS:
        assert table["TMWM (default)"][band] < table["annual median"][band], band
        assert table["same season only"][band] < table["annual median"][band], band


@pytest.fixture(scope="module")
def summerless_api(demo: DemoServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo's items, those of summer 2022 marked 95 % cloudy: a cloud filter empties it."""
    root = Path(demo.archive.root).parent
    collection = json.loads((root / "items.json").read_text())
    start, end = pd.Timestamp("2022-06-25", tz="UTC"), pd.Timestamp("2022-09-13", tz="UTC")
    for item in collection["features"]:
        if start <= pd.Timestamp(item["properties"]["datetime"]) < end:
            item["properties"]["eo:cloud_cover"] = 95.0
    items = tmp_path_factory.mktemp("summerless") / "items.json"
    items.write_text(json.dumps(collection))
    with serve_stac_api(items, demo.archive.collection_dict()) as api:
        yield api.url


def test_a_store_with_an_empty_season_is_gap_filled_end_to_end(
    demo: DemoServers, summerless_api: str, observed: str, client: Client, tmp_path: Path
) -> None:
    job = make_job(
        **fields(demo, stac_api=summerless_api),
        seasons=["summer"],
        max_cloud_cover=90,
        gap_fill=True,
        output=str(tmp_path / "summers.zarr"),
    )
    with pytest.warns(EmptySeasonWarning, match=r"2022-summer .*the cloud filter emptied it"):
        result = run_job(job, client, show_progress=False)
    composite = open_composite(job.output)
    assert [str(s) for s in composite.season.values] == [
        "2021-summer",
        "2022-summer",
        "2023-summer",
    ]
    empty = composite.sel(season="2022-summer")
    assert int(empty["acquisitions"]) == 0 and bool(empty["red"].isnull().all())
    assert int(empty["valid_count"].max()) == 0

    assert result.gap_fill is not None and result.gap_fill.output == str(
        tmp_path / "summers-filled.zarr"
    )
    filled = open_composite(result.gap_fill.output)
    codes = filled["red_fill_source"]
    assert bool((codes.sel(season="2022-summer") == 1).all()), "from the summers of 2021 and 2023"
    # The other summers: observed pixels keep code 0; those never clear there are filled.
    others = ["2021-summer", "2023-summer"]
    seen = composite["valid_count"].sel(season=others) > 0
    assert bool((codes.sel(season=others) == 0).where(seen, True).all())
    assert bool((codes.sel(season=others) > 0).where(~seen, True).all())
    truth = open_composite(observed)
    for band in BANDS:
        got = filled[band].sel(season="2022-summer", percentile=50)
        want = truth[band].sel(season="2022-summer", percentile=50)
        year = truth[band].sel(season=["2022-winter", "2022-spring", "2022-autumn"], percentile=50)
        everywhere = xr.ones_like(want, dtype=bool)
        assert rmse(got, want, everywhere) < rmse(year.median("season"), want, everywhere), band

    false_colour = ("nir", "red", "green")  # the store has no blue band
    path = write_quicklook(filled, tmp_path / "quicklook.png", index="NDVI", rgb=false_colour)
    fig = quicklook_figure(filled, index="NDVI", rgb=false_colour)
    rgb_row = fig.axes[:3]
    overlay = {ax.get_title().split("\n")[0]: ax.images[-1].get_array() for ax in rgb_row}
    marked, plain = overlay["2022-summer"], overlay["2021-summer"]
    assert marked is not None and plain is not None
    assert np.all(marked[..., 3] == FILL_MARK[3]), "every pixel of 2022 is filled"
    assert np.all(plain[..., 3] == 0), "observed pixels are not marked"
    assert "filled: magenta" in rgb_row[0].get_ylabel()
    assert any("fill source" in ax.get_ylabel() for ax in fig.axes)
    png = mpimg.imread(path)[..., :3]
    magenta = (png[..., 0] > 0.6) & (png[..., 1] < 0.45) & (png[..., 2] > 0.6)
    assert magenta.sum() > 500, "the filled season shows marked in the PNG"


def test_on_empty_season_error_refuses_the_job_before_compute(
    demo: DemoServers, summerless_api: str, client: Client, tmp_path: Path
) -> None:
    job = make_job(
        **fields(demo, stac_api=summerless_api),
        seasons=["summer"],
        max_cloud_cover=90,
        on_empty_season="error",
        output=str(tmp_path / "refused.zarr"),
    )
    with (
        get_task_stream(client) as tasks,
        pytest.raises(InputError, match=r"2022-summer .*cloud filter emptied it .*on_empty_season"),
    ):
        run_job(job, client, show_progress=False)
    assert tasks.data == [] and not (tmp_path / "refused.zarr").exists()


def test_a_season_the_cloud_mask_empties_is_named(
    demo: DemoServers, client: Client, tmp_path: Path
) -> None:
    job = make_job(
        **fields(demo, years=(2022,)),
        seasons=["summer"],
        mask={"keep_classes": [1]},  # "saturated or defective" only: no pixel of the demo
        output=str(tmp_path / "masked.zarr"),
    )
    with pytest.warns(
        EmptySeasonWarning, match=r"2022-summer \(\d+ acquisition\(s\)\).*cloud mask"
    ):
        run_job(job, client, show_progress=False)


def test_year_after_year_the_store_grows_and_the_fill_follows(
    demo: DemoServers, client: Client, tmp_path: Path
) -> None:
    output = str(tmp_path / "yearly.zarr")
    for year, refilled in (
        (2021, []),
        (2022, ["2021-summer"]),
        (2023, ["2021-summer", "2022-summer"]),
    ):
        job = make_job(
            **fields(demo, years=(year,)), seasons=["summer"], gap_fill=True, output=output
        )
        result = run_job(job, client, show_progress=False)
        assert result.gap_fill is not None and result.gap_fill.seasons_refilled == refilled
        assert result.gap_fill.tiles_written == ["r0000c0000"]
    filled = open_composite(str(tmp_path / "yearly-filled.zarr"))
    assert [str(s) for s in filled.season.values] == ["2021-summer", "2022-summer", "2023-summer"]
    assert bool(filled["complete"].all()) and bool(filled["red"].notnull().all())
