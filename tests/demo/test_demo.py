"""The vertical slice: the demo pipeline checked pixel by pixel against the archive's truth."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import psutil
import pytest
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr

from cubehub.demo import DemoResult, run_demo
from cubehub.errors import ExitCode
from cubehub.seasons import odse_quarters

BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
Q = [25.0, 50.0, 75.0]
#: A stored reflectance is rounded to the nearest DN of 1e-4; float32 adds a little.
ROUNDING = 0.5e-4 + 1e-6


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return run_demo(tmp_path_factory.mktemp("demo"), size=64, show_progress=False)


def _nanpercentile(values: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels give NaN, as wanted
        result: np.ndarray = np.nanpercentile(values, Q, axis=0)
    return result


def test_every_pixel_equals_nanpercentile_of_the_clear_truth(demo: DemoResult) -> None:
    truth = demo.archive.truth()
    out = xr.open_zarr(demo.store)
    assert out.sizes["y"] == truth.sizes["y"] and out.sizes["x"] == truth.sizes["x"]
    np.testing.assert_allclose(out.x.values, truth.x.values)
    np.testing.assert_allclose(out.y.values, truth.y.values)
    calendar = odse_quarters([2022])
    season_of = calendar.assign(truth.time.values)
    clear = truth["clear"].values
    for k, window in enumerate(calendar.windows):
        in_season = season_of == k
        assert in_season.sum() > 3, f"the demo archive should have scenes in {window.label}"
        for band in BANDS:
            values = np.where(clear, truth[band].values, np.nan)[in_season]
            expected = _nanpercentile(values)
            got = out[band].sel(season=window.label).transpose("percentile", "y", "x").values
            np.testing.assert_array_equal(
                np.isnan(got), np.isnan(expected), err_msg=f"{band} {window.label}"
            )
            np.testing.assert_allclose(
                got, expected, atol=ROUNDING, rtol=0, err_msg=f"{band} {window.label}"
            )
        ndvi_obs = (truth["nir"].values - truth["red"].values) / (
            truth["nir"].values + truth["red"].values
        )
        expected_ndvi = _nanpercentile(np.where(clear, ndvi_obs, np.nan)[in_season])
        got_ndvi = out["NDVI"].sel(season=window.label).transpose("percentile", "y", "x").values
        np.testing.assert_allclose(got_ndvi, expected_ndvi, atol=0.5e-4 + 1e-6, rtol=0)
        counts = out["valid_count"].sel(season=window.label).values
        np.testing.assert_array_equal(counts, clear[in_season].sum(axis=0))


def test_store_carries_crs_coordinates_and_season_dates(demo: DemoResult) -> None:
    ds = xr.open_zarr(demo.store)
    assert ds.season.values.tolist() == ["2022-winter", "2022-spring", "2022-summer", "2022-autumn"]
    assert str(ds.season_start.values[0])[:10] == "2021-12-02"
    assert str(ds.season_end.values[0])[:10] == "2022-03-20"
    assert ds.percentile.values.tolist() == Q
    coded = xr.open_zarr(demo.store, decode_coords="all")
    assert coded["red"].rio.crs.to_epsg() == 32633
    assert coded["red"].rio.resolution() == (10.0, -10.0)
    assert coded["red"].encoding["grid_mapping"] == "spatial_ref"
    assert ds.attrs["stac_collection"] == "sentinel-2-l2a"


def test_quicklook_is_a_non_blank_png(demo: DemoResult) -> None:
    import matplotlib.image as mpimg

    image = mpimg.imread(demo.quicklook)
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05


def test_summary_counts(demo: DemoResult) -> None:
    truth = demo.archive.truth()
    assert demo.result.duplicates_dropped >= 1
    assert demo.result.observations == truth.sizes["time"]


def _leftover(marker: str) -> list[str]:
    """Command lines of processes, other than this test run, that mention ``marker``."""
    me = psutil.Process().pid
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if marker in cmd and p.info["pid"] != me:
            found.append(cmd)
    return found


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "100"], "multiple of 32"),
        (["--size", "0"], "size"),
        (["--output", "/proc/cubehub-cannot-write"], "cannot create output directory"),
    ],
)
def test_bad_input_fails_fast_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    cmd = [sys.executable, "-m", "cubehub", "demo", "--output", str(tmp_path / "out"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not _leftover(str(tmp_path))


def test_port_in_use_fails_fast(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cmd = [
            sys.executable,
            "-m",
            "cubehub",
            "demo",
            "--output",
            str(tmp_path),
            "--port",
            str(port),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"port {port}" in proc.stderr and "already in use" in proc.stderr
    assert not _leftover(str(tmp_path))


def test_ctrl_c_stops_every_server(tmp_path: Path, small_archive: object) -> None:
    import shutil
    import signal
    import time

    # Reuse the session's archive so the run reaches its servers quickly.
    shutil.copytree(small_archive.root, tmp_path / "archive")  # type: ignore[attr-defined]
    cmd = [sys.executable, "-m", "cubehub", "demo", "--output", str(tmp_path), "--size", "64"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "Dask dashboard" in line:
                break
        assert any("rustac" in c for c in _leftover(str(tmp_path))), (
            "the STAC API should be running"
        )
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130, rest
        assert "interrupted" in rest
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.5)
    assert not _leftover(str(tmp_path))


def test_a_server_that_cannot_start_exits_5(tmp_path: Path, small_archive: object) -> None:
    import os
    import shutil

    shutil.copytree(small_archive.root, tmp_path / "archive")  # type: ignore[attr-defined]
    # This Python, seen from a folder without the servers beside it, and a PATH without them.
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    env = {
        **os.environ,
        "PATH": str(bare),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    cmd = [str(bare / "python"), "-m", "cubehub", "demo", "--output", str(tmp_path)]
    proc = subprocess.run(
        [*cmd, "--size", "64"], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == ExitCode.SERVER, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        "error: `rustac` is not installed; run `./dev.sh setup` to install the servers"
    ]
    assert not _leftover(str(tmp_path))


def test_the_readmes_python_block_runs_on_the_demo_output(
    demo: DemoResult, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    after = readme.split("Open the result with xarray", 1)[1]
    block = after.split("```python\n", 1)[1].split("```", 1)[0]
    assert "demo-output/composite.zarr" in block
    import matplotlib

    matplotlib.use("Agg")  # the block plots; no display here
    exec(block.replace("demo-output/composite.zarr", str(demo.store)), {})
    assert capsys.readouterr().out.strip() == f"EPSG:{demo.archive.epsg}"
