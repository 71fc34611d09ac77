"""``cubehub predict``: a classifier trained on samples of a store, applied tile by tile into a
map store; the result equals the model on the same features, GDAL reads it, a rerun
resumes, tiles completed later are predicted later, and a model whose features the store
lacks is refused before anything is read or written."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import geopandas as gpd
import joblib
import lightgbm
import numpy as np
import pytest
import rasterio
import skops.io
import xarray as xr
from click.testing import CliRunner
from distributed import Client
from sklearn.ensemble import RandomForestClassifier

from cubehub.cli import main
from cubehub.errors import InputError, StoreMismatchError
from cubehub.jobspec import make_job
from cubehub.learn.model import load_model
from cubehub.learn.predict import open_map, predict_map
from cubehub.learn.sample import OK, STATUS, sample_points
from cubehub.output.open import open_composite
from cubehub.pipeline import run_job


@pytest.fixture(scope="module")
def samples(partial_store: dict[str, Any], store_archive: Any) -> gpd.GeoDataFrame:
    """Every 3rd pixel of the store with its true land cover, sampled."""
    ds = open_composite(partial_store["url"])
    truth = store_archive.truth()["landcover"].values
    rows, cols = np.mgrid[0:64:3, 0:64:3]
    rows, cols = rows.ravel(), cols.ravel()
    points = gpd.GeoDataFrame(
        {"landcover": truth[rows, cols]},
        geometry=gpd.points_from_xy(ds.x.values[cols], ds.y.values[rows]),
        crs=32633,
    )
    return sample_points(ds, points)


@pytest.fixture(scope="module")
def models(samples: gpd.GeoDataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random forest (skops and joblib files) and a LightGBM model (joblib)."""
    folder = tmp_path_factory.mktemp("models")
    train = samples[samples[STATUS] == OK].dropna()
    features = [c for c in train.columns if "_2022-" in c]
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(
        train[features], train["landcover"]
    )
    skops.io.dump(forest, folder / "forest.skops")
    joblib.dump(forest, folder / "forest.joblib")
    boosted = lightgbm.LGBMClassifier(n_estimators=20, min_child_samples=5, verbose=-1)
    joblib.dump(boosted.fit(train[features], train["landcover"]), folder / "lgbm.joblib")
    return {p.stem + p.suffix: p for p in folder.iterdir()}


def model_at_pixels(model: Any, samples: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The model's own predictions at the complete sample points with every feature."""
    names = list(model.feature_names_in_)
    usable = samples[(samples[STATUS] == OK) & samples[names].notna().all(axis=1)]
    return usable, np.asarray(model.predict(usable[names]))


@pytest.mark.parametrize("name", ["forest.skops", "lgbm.joblib"])
def test_the_map_is_the_model_on_the_stores_features(
    name: str,
    models: dict[str, Path],
    samples: gpd.GeoDataFrame,
    partial_store: dict[str, Any],
    tmp_path: Path,
    local_client: Client,
) -> None:
    out = tmp_path / "map.zarr"
    result = predict_map(partial_store["url"], models[name], str(out), client=local_client)
    assert sorted(result.tiles_written) == ["r0000c0000", "r0000c0001", "r0001c0000"]
    assert result.tiles_waiting == ["r0001c0001"]
    predicted = open_map(str(out))
    classes = predicted["class"].values
    model = load_model(models[name]).estimator
    usable, expected = model_at_pixels(model, samples)
    codes = predicted["predicted_class"].values[usable["cubehub_row"], usable["cubehub_col"]]
    np.testing.assert_array_equal(classes[codes.astype(int)], expected)
    assert np.isnan(predicted["predicted_class"].values[32:, 32:]).all()
    total = predicted["probability"].sum("class").values[:32, :32]
    np.testing.assert_allclose(total, 1.0, atol=0.01 * len(classes))
    with rasterio.open(f'ZARR:"{out}":/predicted_class') as src:
        assert src.crs.to_epsg() == 32633 and src.nodata == 255
        assert (src.read(1)[32:, 32:] == 255).all()


def test_resume_and_tiles_completed_later(
    models: dict[str, Path],
    partial_store: dict[str, Any],
    store_job_fields: dict[str, Any],
    tmp_path: Path,
    local_client: Client,
) -> None:
    source = tmp_path / "composite.zarr"
    shutil.copytree(partial_store["url"], source)
    out = str(tmp_path / "map.zarr")
    runner = CliRunner()
    address = ["--backend", "address", "--address", str(local_client.scheduler_info()["address"])]
    args = ["predict", str(source), str(models["forest.joblib"]), out, *address]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "3 tile(s) predicted, 0 done before, 1 waiting" in first.output
    again = runner.invoke(main, args)
    assert "0 tile(s) predicted, 3 done before, 1 waiting" in again.output
    run_job(make_job(**store_job_fields, output=str(source)), local_client, show_progress=False)
    last = predict_map(str(source), models["forest.joblib"], out, client=local_client)
    assert last.tiles_written == ["r0001c0001"] and not last.tiles_waiting
    assert np.isfinite(open_map(out)["predicted_class"].values).mean() > 0.95
    with pytest.raises(StoreMismatchError, match="model_sha256"):
        predict_map(str(source), models["lgbm.joblib"], out, client=local_client)


def test_missing_features_are_named_before_anything_is_read(
    samples: gpd.GeoDataFrame, partial_store: dict[str, Any], tmp_path: Path
) -> None:
    train = samples[samples[STATUS] == OK].dropna()
    columns = ["red_2022-summer_p50", "swir16_2022-summer_p50", "red_2023-winter_p50"]
    frame = train[["red_2022-summer_p50"]].assign(
        **{"swir16_2022-summer_p50": 0.1, "red_2023-winter_p50": 0.2}
    )[columns]
    model = RandomForestClassifier(n_estimators=2).fit(frame, train["landcover"])
    joblib.dump(model, tmp_path / "other.joblib")
    out = tmp_path / "never.zarr"
    with pytest.raises(
        InputError,
        match=r"2 feature\(s\) the store lacks: swir16_2022-summer_p50, red_2023-winter_p50",
    ):
        predict_map(partial_store["url"], tmp_path / "other.joblib", str(out))
    assert not out.exists()
    bare = RandomForestClassifier(n_estimators=2).fit(frame.to_numpy(), train["landcover"])
    joblib.dump(bare, tmp_path / "bare.joblib")
    with pytest.raises(InputError, match="fit it on a pandas DataFrame"):
        load_model(tmp_path / "bare.joblib")
    (tmp_path / "model.txt").write_text("x")
    with pytest.raises(InputError, match="save it with skops"):
        load_model(tmp_path / "model.txt")
    result = CliRunner().invoke(
        main, ["predict", partial_store["url"], str(tmp_path / "other.joblib"), str(out)]
    )
    assert result.exit_code == 2 and "swir16_2022-summer_p50" in result.output
    assert not out.exists()


def test_odse_named_features_work_too(
    samples: gpd.GeoDataFrame, partial_store: dict[str, Any], tmp_path: Path
) -> None:
    ds: xr.Dataset = open_composite(partial_store["url"])
    odse = sample_points(ds, samples[["landcover", "geometry"]].iloc[:120], naming="odse")
    train = odse[odse[STATUS] == OK].dropna()
    names = [c for c in train.columns if c.startswith(("red_p", "nir_p"))]
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(
        train[names], train["landcover"]
    )
    skops.io.dump(model, tmp_path / "odse.skops")
    result = predict_map(partial_store["url"], tmp_path / "odse.skops", str(tmp_path / "m.zarr"))
    assert len(result.tiles_written) == 3
