"""Transactional stores on Icechunk: one snapshot per committed job, nothing from a writer
killed before its commit, history to go back to."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from distributed import Client

from cubehub.errors import InputError
from cubehub.jobspec import make_job
from cubehub.output.icechunk_store import open_icechunk, snapshot_history
from cubehub.output.open import open_composite
from cubehub.output.stac_records import stac_location


@pytest.fixture(scope="module")
def client(local_client: Client) -> Client:
    return local_client


@pytest.fixture(scope="module")
def repo(
    store_job_fields: dict[str, Any],
    client: Client,
    store_drive: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, Any]:
    """A repository holding one committed job; (url, its store)."""
    url = str(tmp_path_factory.mktemp("ice") / "graz.icechunk")
    store, written = store_drive(
        make_job(**store_job_fields, output=url, store_kind="icechunk"), client
    )
    assert len(written) == 4
    return url, store


def chunk_objects(url: str) -> set[str]:
    return {str(p) for p in Path(url, "chunks").rglob("*") if p.is_file()}


def test_a_committed_job_is_one_snapshot_with_exact_data(
    repo: tuple[str, Any], store_reference: dict[str, Any]
) -> None:
    url, store = repo
    history = snapshot_history(url)
    assert [h["message"] for h in history][1:] == ["Repository initialized"]
    assert history[0]["id"] == store.snapshot_id and history[0]["metadata"]["tiles"] == sorted(
        store_reference["tiles"]
    )
    stored, _completion, layout = open_icechunk(url, decode=False)
    for name, expected in store_reference["arrays"].items():
        np.testing.assert_array_equal(stored[name].values, expected, err_msg=name)
    assert len(layout) == 4
    ds = open_composite(url)
    assert bool(ds["complete"].all()) and ds["red"].rio.crs.to_epsg() == 32633
    item = json.loads(Path(stac_location(url), "item.json").read_text())
    assert item["assets"]["data"]["type"] == "application/vnd.zarr+icechunk"


def test_rerunning_a_committed_job_changes_nothing(
    repo: tuple[str, Any], store_job_fields: dict[str, Any], client: Client, store_drive: Any
) -> None:
    url, _ = repo
    before = snapshot_history(url)
    store, written = store_drive(
        make_job(**store_job_fields, output=url, store_kind="icechunk"), client
    )
    assert written == [] and store.snapshot_id is None
    assert snapshot_history(url) == before


def test_a_writer_killed_before_commit_leaves_main_unchanged_then_a_job_is_one_new_snapshot(
    repo: tuple[str, Any],
    store_job_fields: dict[str, Any],
    store_writer: Path,
    store_reference: dict[str, Any],
    client: Client,
    store_drive: Any,
    tmp_path: Path,
) -> None:
    url, first = repo
    before = snapshot_history(url)
    job = make_job(
        **store_job_fields, output=url, store_kind="icechunk", overwrite=True, method="nearest"
    )
    config = tmp_path / "job.json"
    config.write_text(json.dumps({"job": job.model_dump(mode="json"), "tiles": None}))
    existing = chunk_objects(url)
    with open(tmp_path / "writer.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(store_writer), str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while (
            time.monotonic() < deadline
            and proc.poll() is None
            and not (chunk_objects(url) - existing)
        ):
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        code = proc.wait(timeout=30)
    assert code == -signal.SIGKILL, (tmp_path / "writer.log").read_text()[-2000:]
    assert chunk_objects(url) - existing, "the writer wrote chunks before it was killed"
    assert snapshot_history(url) == before
    stored, _, _ = open_icechunk(url, decode=False)
    for name, expected in store_reference["arrays"].items():
        np.testing.assert_array_equal(stored[name].values, expected, err_msg=name)

    store, written = store_drive(job, client, ["r0000c0000", "r0000c0001"])
    after = snapshot_history(url)
    assert len(written) == 2 and len(after) == len(before) + 1
    assert after[0]["id"] == store.snapshot_id and after[1:] == before
    new, _, _ = open_icechunk(url, decode=False)
    old, _, _ = open_icechunk(url, snapshot=first.snapshot_id, decode=False)
    assert not np.array_equal(
        new["red"][..., :32, :].values, old["red"][..., :32, :].values
    )  # nearest != linear
    np.testing.assert_array_equal(old["red"].values, store_reference["arrays"]["red"])


def test_mark_complete_needs_the_written_changes(
    repo: tuple[str, Any], store_job_fields: dict[str, Any]
) -> None:
    from cubehub.output.open import open_store
    from cubehub.pipeline import plan_job, template, tile_composite

    url, _ = repo
    job = make_job(**store_job_fields, output=url)
    plan = plan_job(job)
    first = tile_composite(plan, plan.tiles[0])
    store = open_store(
        url,
        template(first, plan.grid, job.chunk_size),
        plan.tiles,
        store_kind="icechunk",
        overwrite=True,
    )
    store.write_tile(first, plan.tiles[0])  # a delayed write, never computed
    with pytest.raises(InputError, match=r"mark_complete\(tile, future.result\(\)\)"):
        store.mark_complete(plan.tiles[0])
    store.mark_complete(plan.tiles[1])  # a tile over no data: recorded without a write
    with pytest.raises(InputError, match="Zarr format 3"):
        open_store(
            url,
            template(first, plan.grid, job.chunk_size),
            plan.tiles,
            store_kind="icechunk",
            zarr_format=2,
        )


def test_info_on_a_repository_before_its_first_commit_is_one_line_without_warnings(
    tmp_path: Path,
) -> None:
    from cubehub.errors import ExitCode
    from cubehub.output.open import open_store
    from cubehub.pipeline import template
    from cubehub.testing.store_contract import CHUNK, TILE, grid_of, synthetic_composite
    from cubehub.tiles import split_grid

    ds = synthetic_composite()
    grid = grid_of(ds)
    url = str(tmp_path / "new.icechunk")
    tile = ds.isel(y=slice(0, TILE), x=slice(0, TILE))
    # The template is staged in a session that is never committed: a writer still running.
    open_store(
        url, template(tile, grid, CHUNK), split_grid(grid, TILE, CHUNK), store_kind="icechunk"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "cubehub", "info", url],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "ICECHUNK_LOG"},
    )
    assert proc.returncode == ExitCode.BAD_INPUT, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr  # no Icechunk warning about local storage either
    assert lines[0].startswith(f"error: {url} is an Icechunk repository without a committed")
    assert "object at 0x" not in lines[0] and "run the job to its end" in lines[0]
