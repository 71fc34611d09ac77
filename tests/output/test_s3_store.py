"""Composites in a real S3 server (SeaweedFS on loopback): exact read-back by independent
clients, credentials that never leak, Icechunk on object storage, and bad input that
fails before any compute."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import cloudpickle
import numpy as np
import pytest
import rioxarray  # noqa: F401  (the .rio accessor)
import s3fs
import xarray as xr
from distributed import Client, LocalCluster, get_task_stream

from cubehub.demo.servers import free_port
from cubehub.errors import InputError, OutputLocationError, StoreMismatchError
from cubehub.jobspec import make_job
from cubehub.output.layout import MARKER, TileStore
from cubehub.output.open import open_composite
from cubehub.output.storage import check_output, probe_filesystem
from cubehub.output.zarr_store import CompositeStore
from cubehub.pipeline import JobResult, plan_job, run_job, template, tile_composite
from cubehub.testing.store_contract import race_to_create

STORE = "s3://composites/graz-2022.zarr"
ICECHUNK = "s3://composites/graz-2022.icechunk"


@pytest.fixture(scope="module")
def s3_env(s3_server: Any) -> Iterator[dict[str, str]]:
    """This process (and the workers it starts) see the S3 server through AWS_* only."""
    env = {
        **s3_server.env(),
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_CONFIG_FILE": "/nonexistent",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield env


@pytest.fixture(scope="module")
def log_text() -> Iterator[io.StringIO]:
    """Every log record of this module's tests, at DEBUG, from every logger."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture(scope="module")
def client(s3_env: dict[str, str]) -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as lc,
        Client(lc) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def s3_result(store_job_fields: dict[str, Any], client: Client, log_text: io.StringIO) -> JobResult:
    return run_job(make_job(**store_job_fields, output=STORE), client, show_progress=False)


@pytest.fixture(scope="module")
def reader(s3_server: Any) -> s3fs.S3FileSystem:
    """An independent client, with explicit credentials (not cubehub's environment)."""
    return s3fs.S3FileSystem(
        key=s3_server.access_key,
        secret=s3_server.secret_key,
        endpoint_url=s3_server.endpoint_url,
        skip_instance_cache=True,
    )


def test_a_composite_in_s3_reads_back_exactly(
    s3_result: JobResult, reader: s3fs.S3FileSystem, store_reference: dict[str, Any]
) -> None:
    assert sorted(s3_result.tiles_written) == sorted(store_reference["tiles"])
    stored = xr.open_zarr(reader.get_mapper(STORE), mask_and_scale=False)
    for name, expected in store_reference["arrays"].items():
        np.testing.assert_array_equal(stored[name].values, expected, err_msg=name)
    gis = xr.open_zarr(reader.get_mapper(STORE), decode_coords="all")
    assert gis["red"].rio.crs.to_epsg() == 32633
    assert gis["red"].rio.resolution() == (10.0, -10.0)
    assert reader.exists("composites/graz-2022.zarr/.zmetadata")  # format 2, the default
    assert len(reader.find("composites/graz-2022.zarr/cubehub-complete")) == 4 * 4
    item = reader.cat_file("composites/graz-2022.zarr.stac/item.json")
    assert f'"href": "{STORE}"'.encode() in item


def test_reading_through_cubehub_and_resuming_in_s3(
    s3_result: JobResult, store_job_fields: dict[str, Any], client: Client
) -> None:
    ds = open_composite(STORE)
    assert bool(ds["complete"].all())
    assert float(ds["valid_count"].mean()) > 1
    again = run_job(make_job(**store_job_fields, output=STORE), client, show_progress=False)
    assert again.tiles_written == [] and len(again.tiles_skipped) == 4


def test_the_canary_credentials_appear_nowhere(
    s3_result: JobResult,
    s3_server: Any,
    reader: s3fs.S3FileSystem,
    log_text: io.StringIO,
    client: Client,
    store_job_fields: dict[str, Any],
) -> None:
    secrets = [s3_server.access_key.encode(), s3_server.secret_key.encode()]
    objects = reader.find("composites/graz-2022.zarr") + reader.find(
        "composites/graz-2022.zarr.stac"
    )
    assert len(objects) > 20
    for path in objects:
        body = reader.cat_file(path)
        assert not any(s in body for s in secrets), path
    logs = log_text.getvalue()
    assert "graz-2022" in logs  # the capture works
    assert (
        "Sending http request" in logs
    )  # botocore's DEBUG request log, Authorization header included
    assert s3_server.secret_key not in logs and s3_server.access_key not in logs
    worker_logs = str(client.get_worker_logs()) + str(client.get_scheduler_logs())
    assert not any(s.decode() in worker_logs for s in secrets)
    # The task graph of a tile write carries no credential either.
    job = make_job(**store_job_fields, output=STORE)
    plan = plan_job(job)
    first = tile_composite(plan, plan.tiles[0])
    fresh = "s3://composites/graph-check.zarr"
    store = CompositeStore.open_or_create(
        fresh, template(first, plan.grid, job.chunk_size), plan.tiles
    )
    graph = dict(store.write_tile(first, plan.tiles[0]).__dask_graph__())
    pickled = cloudpickle.dumps(graph)
    assert len(graph) > 100 and b"graph-check" in pickled
    assert not any(s in pickled for s in secrets)


def test_icechunk_on_object_storage(
    s3_env: dict[str, str],
    s3_server: Any,
    store_job_fields: dict[str, Any],
    client: Client,
    store_drive: Any,
    store_reference: dict[str, Any],
    reader: s3fs.S3FileSystem,
) -> None:
    from cubehub.output.icechunk_store import open_icechunk, snapshot_history

    job = make_job(**store_job_fields, output=ICECHUNK, store_kind="icechunk")
    store, written = store_drive(job, client, ["r0001c0000"])  # one tile keeps it quick
    assert written == ["r0001c0000"]
    history = snapshot_history(ICECHUNK)
    assert len(history) == 2 and history[0]["id"] == store.snapshot_id
    stored, completion, _ = open_icechunk(ICECHUNK, decode=False)
    region = {"y": slice(32, 64), "x": slice(0, 32)}
    for name, expected in store_reference["arrays"].items():
        np.testing.assert_array_equal(
            stored[name].isel(region).values, expected[..., 32:64, 0:32], err_msg=name
        )
    assert completion.tiles_complete(
        [str(s) for s in stored.season.values], store_reference["tiles"]
    ) == {"r0001c0000"}
    secrets = [s3_server.access_key.encode(), s3_server.secret_key.encode()]
    objects = reader.find("composites/graz-2022.icechunk") + reader.find(
        "composites/graz-2022.icechunk.stac"
    )
    assert len(objects) > 10
    for path in objects:
        assert not any(s in reader.cat_file(path) for s in secrets), path


def _no_compute(client: Client, call: Any) -> Exception:
    with get_task_stream(client) as tasks, pytest.raises(InputError) as info:
        call()
    assert tasks.data == [], "compute started before the bad input was found"
    return info.value


def test_a_probe_collected_under_a_running_event_loop_closes_quietly(
    s3_env: dict[str, str],
) -> None:
    """A notebook kernel runs each cell inside an asyncio loop, so the garbage collector runs
    s3fs's finaliser there: it must close the connection on s3fs's own loop, not print "Task
    exception was never retrieved ... attached to a different loop" into the notebook."""
    problems: list[str] = []

    async def probe_and_collect() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: problems.append(str(context["message"]))
        )
        for _ in range(2):
            with probe_filesystem(STORE) as (fs, _):
                fs.ls("composites")
            del fs
            gc.collect()
            await asyncio.sleep(0.1)

    asyncio.run(probe_and_collect())
    assert problems == []


def test_a_misspelled_bucket_fails_before_compute(
    s3_env: dict[str, str], store_job_fields: dict[str, Any], client: Client
) -> None:
    job = make_job(**store_job_fields, output="s3://compsites/graz.zarr")
    error = _no_compute(client, lambda: run_job(job, client, show_progress=False))
    assert isinstance(error, OutputLocationError)
    assert "bucket 'compsites' does not exist" in str(error) and "spelling" in str(error)


def test_an_unreachable_endpoint_fails_fast(s3_env: dict[str, str]) -> None:
    with pytest.raises(OutputLocationError, match=r"unreachable.*endpoint_url"):
        check_output("s3://composites/x.zarr", {"endpoint_url": f"http://127.0.0.1:{free_port()}"})


def test_missing_or_wrong_credentials_are_named(
    s3_env: dict[str, str], s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {"endpoint_url": s3_server.endpoint_url}
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(OutputLocationError, match="no credentials found; set AWS_ACCESS_KEY_ID"):
        check_output("s3://composites/x.zarr", options)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(OutputLocationError, match="access denied") as info:
        check_output("s3://composites/x.zarr", options)
    assert "not-the-secret" not in str(info.value)
    with pytest.raises(InputError, match="must not hold credentials"):
        check_output("s3://composites/x.zarr", {**options, "secret": "x", "key": "y"})


def test_an_s3_store_of_another_grid_is_refused_untouched(
    s3_result: JobResult, store_job_fields: dict[str, Any], reader: s3fs.S3FileSystem
) -> None:
    before = {p: reader.info(p)["ETag"] for p in reader.find("composites/graz-2022.zarr")}
    xmin, ymin, xmax, ymax = store_job_fields["bounds"]
    job = make_job(**{**store_job_fields, "bounds": (xmin, ymin, xmax - 320, ymax)}, output=STORE)
    plan = plan_job(job)
    first = tile_composite(plan, plan.tiles[0])
    with pytest.raises(StoreMismatchError, match="grid differs"):
        CompositeStore.open_or_create(STORE, template(first, plan.grid, job.chunk_size), plan.tiles)
    reader.invalidate_cache()
    assert {p: reader.info(p)["ETag"] for p in reader.find("composites/graz-2022.zarr")} == before


@pytest.mark.parametrize("round_", range(5))
def test_writers_creating_one_s3_store_at_once_get_one_store(
    s3_env: dict[str, str], reader: s3fs.S3FileSystem, round_: int
) -> None:
    url = f"s3://composites/race-{round_}.zarr"
    got = race_to_create(url)
    assert all(isinstance(g, TileStore) for g in got), got
    reader.invalidate_cache()
    marker = json.loads(reader.cat_file(f"composites/race-{round_}.zarr/{MARKER}"))
    assert marker["state"] == "ready"
    assert set(xr.open_zarr(reader.get_mapper(url), decode_coords="all").data_vars) == {
        "red",
        "nir",
        "NDVI",
        "valid_count",
    }
