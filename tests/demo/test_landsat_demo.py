"""The ODSE product as published, on Landsat: ``cubehub demo --collection landsat-c2-l2``
checked pixel by pixel against the archive's truth.

The demo job's output grid is the archive window, whose edges lie on the native Landsat
grid (15 m modulo 30 m), so every output pixel is one input pixel: no resampling.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from cubehub.demo import DemoResult, run_demo
from cubehub.demo.landsat import LandsatArchive
from cubehub.seasons import odse_quarters
from cubehub.testing.landsat_truth import assert_year_matches_truth, nanpercentile, season_values

SIZE = 32


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    out = tmp_path_factory.mktemp("landsat-demo")
    return run_demo(out, collection="landsat-c2-l2", size=SIZE, show_progress=False)


def test_every_pixel_equals_nanpercentile_of_the_clear_truth(demo: DemoResult) -> None:
    assert isinstance(demo.archive, LandsatArchive)
    truth = demo.archive.truth().load()
    out = xr.open_zarr(demo.store)
    assert out.attrs["stac_collection"] == "landsat-c2-l2"
    assert_year_matches_truth(out, truth, demo.archive.spec.year)


def test_thermal_is_kelvin(demo: DemoResult) -> None:
    out = xr.open_zarr(demo.store)
    p50 = out["lwir11"].sel(percentile=50.0)
    summer, winter = (float(p50.sel(season=f"2021-{s}").mean()) for s in ("summer", "winter"))
    assert 285 < summer < 310 and 260 < winter < 285 and summer > winter + 10


def test_slc_off_gaps_are_missing_not_zero(demo: DemoResult) -> None:
    """Counted as 0 (reflectance -0.2), the gaps would show; the store has them missing."""
    truth = demo.archive.truth().load()
    out = xr.open_zarr(demo.store)
    l7 = np.array([p == "landsat-7" for p in truth.attrs["platform"]])
    gaps = (truth["qa_pixel"].values == 1) & l7[:, None, None]
    assert gaps[l7].mean() > 0.05, "the Landsat 7 overpasses should have SLC-off gaps"
    season_of = odse_quarters([2021]).assign(truth.time.values)
    in_season = season_of == 0
    red = truth["red"].values
    as_zero = np.where(truth["clear"].values, red, np.where(gaps, -0.2, np.nan))[in_season]
    wrong = nanpercentile(as_zero)
    got = season_values(out, "red", "2021-winter")
    assert (np.abs(got - wrong) > 0.01).any()
    assert np.nanmin(got) > 0  # no percentile pulled towards a zero DN


def test_same_day_rows_count_once(demo: DemoResult) -> None:
    """Path 190's rows 027 and 028 overlap in the middle of the window: one observation."""
    truth = demo.archive.truth().load()
    out = xr.open_zarr(demo.store)
    assert demo.result.observations == truth.sizes["time"]
    assert demo.result.items_found > demo.result.observations  # two items on those days
    twice = np.array([len(ids.split(",")) == 2 for ids in truth.attrs["item_ids"]])
    centre = (np.arange(SIZE) + 0.5) / SIZE
    middle = (centre > 0.4) & (centre < 0.6)
    calendar = odse_quarters([2021])
    season_of = calendar.assign(truth.time.values)
    differs = 0
    for k, window in enumerate(calendar.windows):
        steps = np.flatnonzero(season_of == k)
        doubled = np.concatenate([steps, steps[twice[steps]]])  # counted twice
        values = np.where(truth["clear"].values, truth["nir08"].values, np.nan)[doubled]
        wrong = nanpercentile(values)[:, middle]
        got = season_values(out, "nir08", window.label)[:, middle]
        differs += int((np.abs(got - wrong) > 1e-4).sum())
        counts = out["valid_count"].sel(season=window.label).values[middle]
        assert (counts == truth["clear"].values[steps][:, middle].sum(axis=0)).all()
    assert differs > 0


def test_the_cli_refuses_a_bad_landsat_size_in_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "cubehub", "demo", "--collection", "landsat-c2-l2"]
    proc = subprocess.run(
        [*cmd, "--size", "40", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "multiple of 16" in lines[0] and "use e.g. 32" in lines[0]
    assert not list(tmp_path.iterdir())  # refused before anything was built
