"""fill_store on real stores and a real cluster: random stores with random gaps filled exactly
as the numpy reference says (hypothesis), observed values kept bit for bit, tiles waiting for
their composites, years appended and seasons filled again, a writer killed at a random point,
and bad outputs refused before any compute."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from distributed import Client, get_task_stream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cubehub.cli import main
from cubehub.compute.gapfill import UNFILLED, GapFillRules
from cubehub.errors import InputError, StoreMismatchError
from cubehub.fill_job import fill_shares, fill_store
from cubehub.output.icechunk_store import open_icechunk
from cubehub.output.layout import COMPLETE_DIR, StoreKind
from cubehub.output.open import is_icechunk_repo, open_composite, open_store
from cubehub.pipeline import template
from cubehub.seasons import odse_quarters
from cubehub.testing.gapfill import reference_dataset
from cubehub.testing.store_contract import HALF_DN, grid_of, synthetic_composite, write_tile
from cubehub.tiles import Tile, split_grid

CHUNK = TILE = 32
NAMES = list(odse_quarters([2000]).names)
FILLED = ("red", "nir", "NDVI")


@pytest.fixture(scope="module")
def client(local_client: Client) -> Client:
    return local_client


def source_composite(years: tuple[int, ...], *, gaps: float = 0.4, seed: int = 0) -> xr.Dataset:
    """A synthetic composite of 64 x 64 px (four 32 px tiles) with random pixel-seasons missing."""
    ds = synthetic_composite(years, seed=seed, chunk=CHUNK)
    rng = np.random.default_rng(seed)
    missing = rng.random((ds.sizes["season"], ds.sizes["y"], ds.sizes["x"])) < gaps
    mask = xr.DataArray(~missing, dims=("season", "y", "x"))
    for name in FILLED:
        encoding = ds[name].encoding
        ds[name] = ds[name].where(mask)
        ds[name].encoding = encoding
    return ds


def write_source(
    url: str, ds: xr.Dataset, *, kind: StoreKind = "zarr", tiles: list[int] | None = None
) -> list[Tile]:
    """Write ``ds`` into a composite store at ``url`` (its tiles ``tiles``, default all)."""
    grid = grid_of(ds)
    all_tiles = split_grid(grid, TILE, CHUNK)
    tmpl = template(ds.isel(y=slice(0, TILE), x=slice(0, TILE)), grid, CHUNK)
    store = open_store(
        url, tmpl, all_tiles, store_kind=kind, zarr_format=3 if kind == "icechunk" else 2
    )
    for k in range(len(all_tiles)) if tiles is None else tiles:
        write_tile(store, ds, all_tiles[k])
    store.finish()
    return all_tiles


def raw(url: str) -> xr.Dataset:
    """The store's stored integers, nothing hidden, in memory."""
    ds = open_icechunk(url, decode=False)[0] if is_icechunk_repo(url) else None
    stored: xr.Dataset = (ds if ds is not None else xr.open_zarr(url, mask_and_scale=False)).load()
    return stored


def assert_filled_as_the_reference(source: str, output: str, rules: GapFillRules) -> None:
    """Codes exactly, observed integers bit for bit, filled values within half a DN."""
    stored = open_composite(source, complete_only=False).load()
    expected = reference_dataset(stored, NAMES, rules)
    filled, src_raw, out_raw = open_composite(output).load(), raw(source), raw(output)
    for name, (values, codes) in expected.items():
        got_codes = out_raw[f"{name}_fill_source"].values
        np.testing.assert_array_equal(got_codes, codes, err_msg=name)
        observed = np.broadcast_to((codes == 0)[:, None], values.shape)
        np.testing.assert_array_equal(
            out_raw[name].values[observed], src_raw[name].values[observed], err_msg=name
        )
        # A stored value is the nearest DN (the median of two DNs can fall half-way),
        # compared in float32 (the decoded values' rounding, about 1e-7).
        np.testing.assert_allclose(
            filled[name].values, values, atol=HALF_DN + 1e-6, rtol=0, err_msg=name
        )
    np.testing.assert_array_equal(out_raw["valid_count"].values, src_raw["valid_count"].values)


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    years=st.sets(st.integers(2019, 2023), min_size=1, max_size=3),
    seasons=st.sets(st.sampled_from(NAMES), min_size=1),
    gaps=st.sampled_from([0.2, 0.6, 0.9]),
    same_season_years=st.integers(1, 2),
    seed=st.integers(0, 1000),
)
def test_a_random_store_is_filled_exactly_as_the_reference(
    client: Client,
    years: set[int],
    seasons: set[str],
    gaps: float,
    same_season_years: int,
    seed: int,
) -> None:
    ds = source_composite(tuple(sorted(years)), gaps=gaps, seed=seed)
    ds = ds.sel(season=[s for s in ds.season.values if str(s).split("-")[1] in seasons])
    rules = GapFillRules(same_season_years=same_season_years)
    with tempfile.TemporaryDirectory() as tmp:
        source, output = f"{tmp}/c.zarr", f"{tmp}/filled.zarr"
        write_source(source, ds)
        result = fill_store(source, output, client, rules=rules, show_progress=False)
        assert len(result.tiles_written) == 4 and not result.tiles_waiting
        assert_filled_as_the_reference(source, output, rules)
        shares = fill_shares(output)
        assert sum(shares.values()) == pytest.approx(1.0)
        assert shares.get("observed", 0) <= 1 - gaps / 2 or gaps < 0.5


@pytest.mark.parametrize("kind", ["zarr", "icechunk"])
def test_an_appended_year_is_filled_and_its_neighbours_filled_again(
    kind: StoreKind, tmp_path: Path, client: Client
) -> None:
    source, output = str(tmp_path / "c.store"), str(tmp_path / "filled.store")
    first = source_composite((2021,))
    write_source(source, first, kind=kind)
    once = fill_store(source, output, client, show_progress=False)
    assert once.seasons_refilled == [] and len(once.tiles_written) == 4
    codes = raw(output)["red_fill_source"].values
    assert set(np.unique(codes)) <= {0, 5, 6, UNFILLED}, "one year: neighbours and the year only"
    assert_filled_as_the_reference(source, output, GapFillRules())

    both = source_composite((2021, 2022))  # same 2021 values (same seed), 2022 appended
    write_source(source, both, kind=kind)
    again = fill_store(source, output, client, show_progress=False)
    assert again.seasons_refilled == [f"2021-{n}" for n in NAMES]
    assert sorted(again.tiles_written) == sorted(once.tiles_written)
    codes = raw(output)["red_fill_source"].values
    assert (codes[:4] == 1).any(), "2021 now fills from 2022"
    assert_filled_as_the_reference(source, output, GapFillRules())


def test_tiles_wait_for_their_composites_and_a_rerun_fills_only_them(
    tmp_path: Path, client: Client
) -> None:
    source, output = str(tmp_path / "c.zarr"), str(tmp_path / "filled.zarr")
    ds = source_composite((2021, 2022))
    tiles = write_source(source, ds, tiles=[0, 1, 2])
    first = fill_store(source, output, client, show_progress=False)
    assert first.tiles_waiting == [tiles[3].id] and len(first.tiles_written) == 3
    hidden = open_composite(output)["red"].isel(y=slice(*tiles[3].y), x=slice(*tiles[3].x))
    assert bool(hidden.isnull().all()), "a tile not filled reads as missing"
    write_source(source, ds, tiles=[3])
    second = fill_store(source, output, client, show_progress=False)
    assert second.tiles_written == [tiles[3].id] and len(second.tiles_skipped) == 3
    assert_filled_as_the_reference(source, output, GapFillRules())


def test_empty_seasons_are_filled_or_left_nan_as_asked(tmp_path: Path, client: Client) -> None:
    source = str(tmp_path / "c.zarr")
    ds = source_composite((2021, 2022))
    counts = [0 if str(s) == "2021-summer" else 9 for s in ds.season.values]
    write_source(source, ds.assign_coords(acquisitions=("season", counts)))
    fill_store(source, str(tmp_path / "nan.zarr"), client, empty_seasons="nan", show_progress=False)
    fill_store(source, str(tmp_path / "fill.zarr"), client, show_progress=False)
    left, filled = raw(str(tmp_path / "nan.zarr")), raw(str(tmp_path / "fill.zarr"))
    summer = {"season": "2021-summer"}
    gaps = np.isnan(open_composite(source)["red"].sel(summer).values[0])
    assert gaps.any()
    np.testing.assert_array_equal(
        left["red_fill_source"].sel(summer).values, np.where(gaps, UNFILLED, 0)
    )
    codes = filled["red_fill_source"].sel(summer).values[gaps]
    assert (codes > 0).all() and (codes == 1).mean() > 0.5, "mostly from 2022-summer"
    others = {"season": "2022-summer"}
    np.testing.assert_array_equal(
        left["red_fill_source"].sel(others).values, filled["red_fill_source"].sel(others).values
    )


#: ``python writer.py SOURCE OUTPUT``: fills one tile after the other, each recorded as done.
FILL_WRITER = """
import sys
from distributed import Client, LocalCluster
from cubehub.fill_job import fill_shares, fill_store

if __name__ == "__main__":
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as cluster, Client(cluster) as client:
        for tile in ("r0000c0000", "r0000c0001", "r0001c0000", "r0001c0001"):
            fill_store(sys.argv[1], sys.argv[2], client, tiles=[tile], show_progress=False)
    print("writer done")
"""


#: Zarr metadata objects (formats 2 and 3), not chunks.
METADATA = {".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"}


def chunk_files(root: Path) -> dict[str, bytes]:
    """The chunk objects of the store's data variables, by path (either Zarr format)."""
    out = {}
    for var in (*FILLED, "valid_count", *(f"{v}_fill_source" for v in FILLED)):
        for path in (root / var).rglob("*") if (root / var).is_dir() else ():
            if path.is_file() and path.name not in METADATA and not path.name.endswith(".partial"):
                try:
                    out[str(path.relative_to(root))] = path.read_bytes()
                except FileNotFoundError:  # renamed into place while we looked
                    continue
    return out


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])
def test_a_fill_killed_at_a_random_point_leaves_true_records_and_a_rerun_finishes_it(
    seed: int, tmp_path: Path, client: Client
) -> None:
    source, output = tmp_path / "c.zarr", tmp_path / "filled.zarr"
    write_source(str(source), source_composite((2021, 2022)))
    reference = tmp_path / "reference.zarr"
    fill_store(str(source), str(reference), client, show_progress=False)
    writer = tmp_path / "writer.py"
    writer.write_text(FILL_WRITER)
    total = len(chunk_files(reference))
    kill_after = int(np.random.default_rng(seed).integers(1, total))
    with open(tmp_path / "writer.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(writer), str(source), str(output)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if output.exists() and len(chunk_files(output)) >= kill_after:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        code = proc.wait(timeout=60)
    assert code == -signal.SIGKILL, (tmp_path / "writer.log").read_text()[-2000:]
    records = [p for p in (output / COMPLETE_DIR).rglob("*.json")] if output.exists() else []
    ref = raw(str(reference))
    if records:
        got = raw(str(output))
        for record in records:
            info = json.loads(record.read_text())
            region = {
                "season": [str(s) for s in ref.season.values].index(info["season"]),
                "y": slice(*info["y"]),
                "x": slice(*info["x"]),
            }
            for name in (*FILLED, "red_fill_source"):
                np.testing.assert_array_equal(
                    got[name].isel(region).values,
                    ref[name].isel(region).values,
                    err_msg=f"{name} of {info['tile']} {info['season']} is recorded but not written",
                )
    rerun = fill_store(str(source), str(output), client, show_progress=False)
    assert len(rerun.tiles_written) + len(rerun.tiles_skipped) == 4
    for name in (*FILLED, "red_fill_source", "valid_count"):
        np.testing.assert_array_equal(raw(str(output))[name].values, ref[name].values, err_msg=name)


def test_bad_outputs_are_refused_before_any_compute(tmp_path: Path, client: Client) -> None:
    source, output = str(tmp_path / "c.zarr"), str(tmp_path / "filled.zarr")
    write_source(source, source_composite((2021,)))
    with get_task_stream(client) as tasks:
        with pytest.raises(InputError, match="must not be the composite store"):
            fill_store(source, source, client, show_progress=False)
        with pytest.raises(InputError, match="no store at"):
            fill_store(str(tmp_path / "nothing.zarr"), output, client, show_progress=False)
    assert tasks.data == []
    fill_store(source, output, client, show_progress=False)
    before = raw(output)
    with (
        get_task_stream(client) as tasks,
        pytest.raises(StoreMismatchError, match="same_season_years"),
    ):
        fill_store(
            source, output, client, rules=GapFillRules(same_season_years=2), show_progress=False
        )
    assert tasks.data == []
    xr.testing.assert_identical(raw(output), before)
    other = fill_store(
        source,
        output,
        client,
        rules=GapFillRules(same_season_years=2),
        overwrite=True,
        show_progress=False,
    )
    assert len(other.tiles_written) == 4


def test_the_gapfill_command_logs_each_tile_as_cubehub_run_does(
    tmp_path: Path, client: Client
) -> None:
    """``cubehub gapfill`` shows its INFO lines (a line per filled tile) through the CLI's one
    log handler, tracebacks only with --debug, as ``cubehub run`` does."""
    source, output = str(tmp_path / "c.zarr"), str(tmp_path / "filled.zarr")
    write_source(source, source_composite((2021,)))
    address = str(client.scheduler_info()["address"])
    command = ["gapfill", source, "-o", output, "--backend", "address", "--address", address, "-q"]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    assert f"Filled store {output}" in result.stdout
    tile_lines = [
        line for line in result.stderr.splitlines() if " INFO cubehub.writing: tile " in line
    ]
    assert len(tile_lines) == 4, result.stderr
    assert "Traceback" not in result.stderr
