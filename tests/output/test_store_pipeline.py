"""Real multi-tile jobs into local stores: exact results, a writer killed at random points,
two writers at once, and ``cubehub open`` / ``cubehub info`` on what they leave."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from distributed import Client, get_task_stream

from cubehub.cli.store import info, open_
from cubehub.errors import OutputLocationError, StoreMismatchError
from cubehub.jobspec import make_job
from cubehub.output.completion import Completion
from cubehub.output.layout import COMPLETE_DIR, MARKER, TileStore
from cubehub.output.open import open_composite
from cubehub.output.zarr_store import CompositeStore
from cubehub.pipeline import run_job, template, tile_composite
from cubehub.testing.store_contract import race_to_create

DATA_VARS = ("red", "nir", "NDVI", "valid_count")
CHUNK = 32


@pytest.fixture(scope="module")
def client(local_client: Client) -> Client:
    return local_client


@pytest.fixture(scope="module")
def v3_job_fields(store_job_fields: dict[str, Any]) -> dict[str, Any]:
    """The shared job in Zarr format 3: these tests read chunk paths (``<var>/c/<season>/...``)."""
    return {**store_job_fields, "zarr_format": 3}


@pytest.fixture(scope="module")
def reference_store(
    v3_job_fields: dict[str, Any], client: Client, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An uninterrupted run of the job."""
    url = tmp_path_factory.mktemp("reference") / "c.zarr"
    result = run_job(make_job(**v3_job_fields, output=str(url)), client, show_progress=False)
    assert len(result.tiles_written) == 4
    return url


def chunk_files(root: Path) -> dict[str, tuple[int, int]]:
    """Data chunk files (relative path -> (size, mtime ns)) of the data variables."""
    out = {}
    for var in DATA_VARS:
        for folder, _, names in os.walk(root / var):
            for name in names:
                if name == "zarr.json" or name.endswith(
                    ".partial"
                ):  # zarr writes to .partial, then renames
                    continue
                path = Path(folder, name)
                try:
                    st = path.stat()
                except FileNotFoundError:  # renamed away while we looked
                    continue
                out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def season_and_tile(chunk_path: str, seasons: list[str]) -> tuple[str, str]:
    """(season label, tile id) of a chunk file ``<var>/c/<season>/[<q>/]<by>/<bx>`` (tile = chunk)."""
    parts = chunk_path.split("/")
    by, bx = int(parts[-2]), int(parts[-1])
    return seasons[int(parts[2])], f"r{by:04d}c{bx:04d}"


def records(url: Path) -> Completion:
    root = url / COMPLETE_DIR
    return (
        Completion.from_paths(str(p) for p in root.rglob("*.json"))
        if root.exists()
        else Completion()
    )


def assert_same_data(url: Path, reference: Path) -> None:
    got, ref = (
        xr.open_zarr(url, mask_and_scale=False),
        xr.open_zarr(reference, mask_and_scale=False),
    )
    for name in DATA_VARS:
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)
    ref_files = chunk_files(reference)
    assert set(chunk_files(url)) == set(ref_files)
    for rel in ref_files:
        assert (url / rel).read_bytes() == (reference / rel).read_bytes(), rel


def launch(writer: Path, config: dict[str, Any], folder: Path) -> subprocess.Popen[bytes]:
    cfg = folder / f"writer-{time.monotonic_ns()}.json"
    cfg.write_text(json.dumps(config))
    with open(cfg.with_suffix(".log"), "wb") as log:  # the child keeps its own handle
        return subprocess.Popen(
            [sys.executable, str(writer), str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_the_store_holds_exactly_the_in_memory_result(
    reference_store: Path, store_reference: dict[str, Any]
) -> None:
    stored = xr.open_zarr(reference_store, mask_and_scale=False)
    for name, expected in store_reference["arrays"].items():
        np.testing.assert_array_equal(stored[name].values, expected, err_msg=name)
    assert CompositeStore(str(reference_store)).completed_tiles() == set(store_reference["tiles"])
    decoded = open_composite(str(reference_store))
    assert bool(decoded["complete"].all())
    assert decoded["red"].rio.crs.to_epsg() == 32633


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_writer_killed_at_a_random_point_leaves_only_true_records_and_a_rerun_finishes_it(
    seed: int,
    tmp_path: Path,
    v3_job_fields: dict[str, Any],
    store_writer: Path,
    reference_store: Path,
    client: Client,
) -> None:
    url = tmp_path / "c.zarr"
    job = {**v3_job_fields, "output": str(url)}
    reference_chunks = chunk_files(reference_store)
    rng = np.random.default_rng(seed)
    kill_after = int(rng.integers(0, len(reference_chunks)))  # chunk files on disk at the kill
    proc = launch(store_writer, {"job": job}, tmp_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (url / MARKER).exists() and len(chunk_files(url)) >= kill_after:
                time.sleep(float(rng.uniform(0, 0.05)))
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        with_exit = proc.wait(timeout=30)
    assert with_exit == -signal.SIGKILL, (
        f"the writer ended on its own ({with_exit}) before the kill"
    )

    seasons = [str(s) for s in xr.open_zarr(reference_store).season.values]
    done = records(url)
    if (url / "zarr.json").exists() and done.done:
        stored, ref = (
            xr.open_zarr(url, mask_and_scale=False),
            xr.open_zarr(reference_store, mask_and_scale=False),
        )
        for season, tiles in done.done.items():
            for tile in tiles:
                r, c = int(tile[1:5]), int(tile[6:10])
                region = {
                    "season": seasons.index(season),
                    "y": slice(r * CHUNK, (r + 1) * CHUNK),
                    "x": slice(c * CHUNK, (c + 1) * CHUNK),
                }
                for name in DATA_VARS:
                    np.testing.assert_array_equal(
                        stored[name].isel(region).values,
                        ref[name].isel(region).values,
                        err_msg=f"{name} of {tile} in {season} is recorded complete but is not",
                    )

    before = chunk_files(url) if (url / "zarr.json").exists() else {}
    result = run_job(make_job(**job), client, show_progress=False)
    after = chunk_files(url)
    rewritten = {p for p in after if before.get(p) != after[p]}
    recorded = {(s, t) for s, tiles in done.done.items() for t in tiles}
    expected = {p for p in reference_chunks if season_and_tile(p, seasons) not in recorded}
    assert rewritten == expected, (
        f"kill after {kill_after} files: rewrote {len(rewritten)}, expected {len(expected)}"
    )
    incomplete = {
        t
        for t in ("r0000c0000", "r0000c0001", "r0001c0000", "r0001c0001")
        if any((s, t) not in recorded for s in seasons)
    }
    assert set(result.tiles_written) == incomplete
    assert_same_data(url, reference_store)
    assert CompositeStore(str(url)).completed_tiles() == {
        "r0000c0000",
        "r0000c0001",
        "r0001c0000",
        "r0001c0001",
    }


def test_two_writers_on_disjoint_tiles_of_one_store(
    tmp_path: Path,
    v3_job_fields: dict[str, Any],
    store_writer: Path,
    reference_store: Path,
    store_reference: dict[str, Any],
) -> None:
    url = tmp_path / "c.zarr"
    job = make_job(**v3_job_fields, output=str(url))
    plan = store_reference["plan"]
    first = tile_composite(plan, plan.tiles[0])
    CompositeStore.open_or_create(
        str(url), template(first, plan.grid, job.chunk_size), plan.tiles, zarr_format=3
    )  # the coordinator, in the job's format
    halves = [["r0000c0000", "r0001c0001"], ["r0000c0001", "r0001c0000"]]
    procs = [
        launch(store_writer, {"job": job.model_dump(mode="json"), "tiles": half}, tmp_path)
        for half in halves
    ]
    codes = [p.wait(timeout=180) for p in procs]
    logs = [p.read_text()[-2000:] for p in sorted(tmp_path.glob("writer-*.log"))]
    assert codes == [0, 0], logs
    assert_same_data(url, reference_store)
    assert CompositeStore(str(url)).completed_tiles() == set(store_reference["tiles"])


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"output": "/proc/cubehub-cannot-write/c.zarr"}, OutputLocationError, "not writable"),
        ({"method": "nearest"}, StoreMismatchError, "job parameter method"),
        ({"bands": ("nir", "red", "green")}, StoreMismatchError, "variables"),
        ({"epsg": 3035, "bounds": None}, StoreMismatchError, "CRS differs"),
    ],
    ids=["unwritable-path", "other-method", "other-variables", "other-crs"],
)
def test_bad_outputs_fail_before_compute_and_leave_stores_alone(
    change: dict[str, Any],
    error: type[Exception],
    message: str,
    v3_job_fields: dict[str, Any],
    reference_store: Path,
    client: Client,
) -> None:
    before = chunk_files(reference_store)
    job = make_job(**{**v3_job_fields, "output": str(reference_store), **change})
    with get_task_stream(client) as tasks, pytest.raises(error, match=message) as info:
        run_job(job, client, show_progress=False)
    assert tasks.data == [], "compute started before the bad output was found"
    assert "overwrite" in str(info.value) or "choose another output" in str(info.value)
    assert chunk_files(reference_store) == before


def test_info_and_open_show_what_is_complete(tmp_path: Path, reference_store: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(info, [str(reference_store)])
    assert done.exit_code == 0, done.output
    assert "EPSG:32633" in done.output and "4/4 tiles complete" in done.output
    assert "all complete" in done.output and "2021-12-02..2022-03-20" in done.output
    as_json = json.loads(runner.invoke(info, [str(reference_store), "--json"]).output)
    assert as_json["complete"] is True and as_json["tiles_total"] == 4
    assert as_json["compression"].startswith("blosc") and as_json["provenance"]["source_items"] > 0

    partial = tmp_path / "partial.zarr"
    subprocess.run(["cp", "-r", str(reference_store), str(partial)], check=True)
    for record in (partial / COMPLETE_DIR / "2022-summer").glob("r0001*.json"):
        record.unlink()
    summary = runner.invoke(info, [str(partial)])
    assert "NOT all complete" in summary.output
    assert "2/4 tiles complete; missing r0001c0000, r0001c0001" in summary.output
    shown = runner.invoke(open_, [str(partial)])
    assert shown.exit_code == 0 and "complete" in shown.output and "open_composite(" in shown.output
    ds = open_composite(str(partial))
    assert ds["red"].sel(season="2022-summer").isel(y=slice(32, None)).isnull().all()
    assert ds["red"].sel(season="2022-summer").isel(y=slice(0, 32)).notnull().any()


def test_cli_errors_give_exit_code_2_and_say_what_to_fix(tmp_path: Path) -> None:
    from cubehub.cli import _Group
    from cubehub.cli.store import COMMANDS

    group = _Group("cubehub", commands=list(COMMANDS))
    runner = CliRunner()
    for args, message in (
        (["info", str(tmp_path / "nothing.zarr")], "no store at"),
        (
            ["open", "gs://some-bucket/x.zarr", "--endpoint-url", "http://127.0.0.1:1"],
            "s3:// outputs only",
        ),
    ):
        result = runner.invoke(group, args)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("round_", range(5))
def test_writers_creating_one_store_at_once_get_one_store(tmp_path: Path, round_: int) -> None:
    url = tmp_path / f"race-{round_}.zarr"
    got = race_to_create(str(url))
    assert all(isinstance(g, TileStore) for g in got), got
    assert json.loads((url / MARKER).read_text())["state"] == "ready"
    assert set(xr.open_zarr(url, decode_coords="all").data_vars) == {
        "red",
        "nir",
        "NDVI",
        "valid_count",
    }
    assert records(url).done == {}


def test_each_tile_is_recorded_as_soon_as_it_is_written(
    tmp_path: Path, v3_job_fields: dict[str, Any], client: Client
) -> None:
    url = tmp_path / "c.zarr"
    with get_task_stream(client) as stream:
        result = run_job(make_job(**v3_job_fields, output=str(url)), client, show_progress=False)
    assert len(result.tiles_written) == 4
    computed = [s["stop"] for task in stream.data for s in task["startstops"]]
    last_task_ended = max(computed)
    recorded = sorted(
        datetime.fromisoformat(json.loads(p.read_text())["written"]).timestamp()
        for p in (url / COMPLETE_DIR).rglob("*.json")
    )
    # All four tiles went to the scheduler in one submission (the default task budget);
    # the first was recorded while the others were still computing, not after them all.
    assert recorded[0] < last_task_ended, (recorded[0], last_task_ended)
