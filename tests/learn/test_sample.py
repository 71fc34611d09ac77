"""Sampling a store at points: every format and CRS, values equal the store's, points outside
the grid or in the incomplete tile flagged, ODSE names, bad input refused early; on a Dask
cluster of worker processes, and through the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner
from distributed import Client
from shapely.geometry import LineString

from cubehub.cli import main
from cubehub.errors import InputError
from cubehub.learn.features import store_features
from cubehub.learn.points import read_points
from cubehub.learn.sample import INCOMPLETE, OK, OUTSIDE, STATUS, sample_points
from cubehub.output.open import open_composite


@pytest.fixture(scope="module")
def store(partial_store: dict[str, Any]) -> xr.Dataset:
    """The store, lazily (as sampling reads it)."""
    return open_composite(partial_store["url"])


@pytest.fixture(scope="module")
def loaded(store: xr.Dataset) -> xr.Dataset:
    """The store in memory (64 x 64 px): the expected values."""
    return store.compute()


@pytest.fixture(scope="module")
def points(store: xr.Dataset) -> gpd.GeoDataFrame:
    """60 pixel centres (20 in each written tile, 10 in the unwritten one) and 5 points off
    the grid, in lon/lat."""
    rng = np.random.default_rng(1)
    x, y = store.x.values, store.y.values
    rows = np.concatenate([rng.integers(0, 32, 30), rng.integers(32, 64, 30)])
    cols = np.concatenate([rng.integers(0, 64, 30), rng.integers(0, 64, 30)])
    xs = np.concatenate([x[cols], x[0] - 100.0 - rng.uniform(0, 500, 5)])
    ys = np.concatenate([y[rows], y[rows[:5]]])
    frame = gpd.GeoDataFrame(
        {"plot": [f"p{i}" for i in range(len(xs))]},
        geometry=gpd.points_from_xy(xs, ys),
        crs=32633,
    )
    return frame.to_crs(4326)


def expected_at(store: xr.Dataset, row: int, col: int) -> dict[str, float]:
    out = {}
    for f in store_features(store):
        var = store[f.variable].sel(season=f.season)
        if f.percentile is not None:
            var = var.sel(percentile=f.percentile)
        out[f.name] = float(var.values[row, col])
    return out


def check_samples(samples: pd.DataFrame, store: xr.Dataset, points: gpd.GeoDataFrame) -> None:
    """Each sample equals the in-memory ``store`` at the point's pixel."""
    assert list(samples["plot"]) == list(points["plot"])
    projected = points.geometry.to_crs(32633)
    x0, y1 = float(store.x[0]) - 5, float(store.y[0]) + 5
    for i, point in enumerate(projected):
        row, col = int((y1 - point.y) // 10), int((point.x - x0) // 10)
        got = samples.iloc[i]
        if not (0 <= col < 64):
            assert got[STATUS] == OUTSIDE and got["cubehub_row"] == -1
            assert np.isnan(got["red_2022-summer_p50"])
            continue
        assert (got["cubehub_row"], got["cubehub_col"]) == (row, col)
        assert got[STATUS] == (INCOMPLETE if row >= 32 and col >= 32 else OK)
        for name, value in expected_at(store, row, col).items():
            if np.isnan(value):
                assert np.isnan(got[name]), name
            else:
                assert got[name] == pytest.approx(value, abs=1e-6), name


def test_values_status_and_order_on_a_cluster(
    store: xr.Dataset, loaded: xr.Dataset, points: gpd.GeoDataFrame, local_client: Client
) -> None:
    samples = sample_points(store, points, client=local_client)
    assert samples.crs == points.crs
    assert {"red_2022-winter_p25", "NDVI_2022-autumn_p75", "valid_count_2022-spring"} <= set(
        samples.columns
    )
    counts = samples[STATUS].value_counts()
    assert counts[OUTSIDE] == 5 and counts[INCOMPLETE] > 0 and counts[OK] > 30
    assert samples.loc[samples[STATUS] == OK, "valid_count_2022-summer"].min() >= 1
    check_samples(samples, loaded, points)


@pytest.mark.parametrize(
    ("suffix", "epsg"), [(".geojson", 4326), (".gpkg", 3035), (".parquet", 32633)]
)
def test_each_format_and_crs_through_the_command_line(
    tmp_path: Path,
    suffix: str,
    epsg: int,
    loaded: xr.Dataset,
    points: gpd.GeoDataFrame,
    partial_store: dict[str, Any],
    local_client: Client,
) -> None:
    source = tmp_path / f"points{suffix}"
    reprojected = points.to_crs(epsg)
    if suffix == ".parquet":
        reprojected.to_parquet(source)
    else:
        reprojected.to_file(source, engine="pyogrio")
    out = tmp_path / "samples.parquet"
    address = str(local_client.scheduler_info()["address"])
    args = ["sample", partial_store["url"], str(source), "-o", str(out)]
    result = CliRunner().invoke(main, [*args, "--backend", "address", "--address", address])
    assert result.exit_code == 0, result.output
    assert "5 outside the grid" in result.output
    samples = gpd.read_parquet(out)
    assert samples.crs.to_epsg() == epsg
    check_samples(samples, loaded, points)


def test_odse_names(store: xr.Dataset, points: gpd.GeoDataFrame) -> None:
    samples = sample_points(store, points.iloc[:3], naming="odse")
    assert "red_p50_2022.06.25..2022.09.12" in samples.columns
    assert "valid_count_2021.12.02..2022.03.20" in samples.columns
    plain = sample_points(store, points.iloc[:3])
    np.testing.assert_array_equal(
        samples["nir_p25_2022.03.21..2022.06.24"], plain["nir_2022-spring_p25"]
    )


def test_bad_points_are_refused_before_any_pixel_is_read(
    tmp_path: Path, store: xr.Dataset, points: gpd.GeoDataFrame
) -> None:
    with pytest.raises(InputError, match="no points file"):
        read_points(tmp_path / "missing.gpkg")
    lines = gpd.GeoDataFrame(geometry=[LineString([(15.8, 47.2), (15.81, 47.21)])], crs=4326)
    lines.to_file(tmp_path / "lines.geojson")
    with pytest.raises(InputError, match="points only, found LineString"):
        read_points(tmp_path / "lines.geojson")
    (tmp_path / "plots.csv").write_text("x,y\n1,2\n")
    with pytest.raises(InputError, match="GeoJSON, GeoPackage, GeoParquet"):
        read_points(tmp_path / "plots.csv")
    points.set_crs(None, allow_override=True).to_parquet(tmp_path / "nocrs.parquet")
    with pytest.raises(InputError, match="has no CRS"):
        read_points(tmp_path / "nocrs.parquet")
    taken = points.assign(**{"red_2022-summer_p50": 1.0})
    with pytest.raises(InputError, match="already have column"):
        sample_points(store, taken)
    result = CliRunner().invoke(
        main, ["sample", "x.zarr", str(tmp_path / "plots.csv"), "-o", "out.csv"]
    )
    assert result.exit_code == 2 and "GeoParquet" in result.output
