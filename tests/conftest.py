"""Shared fixtures: real servers on loopback, and a check that none outlive the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from realdata import earth_search_s2

SERVER_NAMES = (
    "rustac",
    "weed",
    "dask scheduler",
    "dask worker",
    "dask-scheduler",
    "dask-worker",
    "configurable-http-proxy",
)


def server_processes() -> list[psutil.Process]:
    """Processes of servers the tests may start, that are children of this test run."""
    me = psutil.Process()
    found = []
    for child in me.children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        if any(name in cmd for name in SERVER_NAMES):
            found.append(child)
    return found


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_servers() -> Iterator[None]:
    yield
    left = [" ".join(p.cmdline()) for p in server_processes() if p.is_running()]
    assert not left, f"servers left running after the tests: {left}"


@pytest.fixture(scope="session")
def earth_search_items() -> list[dict[str, Any]]:
    """The 16 real Earth Search v1 sentinel-2-l2a items of ``realdata.earth_search_s2``."""
    return earth_search_s2()


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The demo archive at 64 x 64 pixels, built once per test session."""
    from cubehub.demo.archive import ArchiveSpec, build_archive

    return build_archive(tmp_path_factory.mktemp("archive-64"), ArchiveSpec(size=64))


# --- output stores (helper "store"): a small archive, its STAC API, and an S3 server ------


#: Credentials of the session's S3 server; tests check they never reach a store or a log.
S3_CANARY_KEY = "CUBEHUBCANARYKEY7Q2X"
S3_CANARY_SECRET = "canary-secret-d41d8cd98f00b204e9800998"


@pytest.fixture(scope="session")
def store_archive(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 64 x 64 px archive with one date every 16 days (23 dates): 4 tiles of 32 px, quick."""
    from cubehub.demo.archive import ArchiveSpec, build_archive

    return build_archive(
        tmp_path_factory.mktemp("store-archive"), ArchiveSpec(size=64, revisit_days=16)
    )


@pytest.fixture(scope="session")
def store_stac_api(store_archive: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a STAC API (rustac) serving ``store_archive``, whose COGs are served over HTTP."""
    from cubehub.demo.servers import serve_files, serve_stac_api

    items = tmp_path_factory.mktemp("store-items") / "items.json"
    with serve_files(store_archive.root) as files:
        store_archive.write_item_collection(items, files.url)
        with serve_stac_api(items, store_archive.collection_dict()) as api:
            yield api.url


@pytest.fixture(scope="session")
def store_job_fields(store_archive: Any, store_stac_api: str) -> dict[str, Any]:
    """Fields of a 4-tile composite job on ``store_archive`` (add ``output``)."""
    return {
        "stac_api": store_stac_api,
        "bbox": store_archive.bbox_lonlat(),
        "bounds": store_archive.bounds,
        "epsg": store_archive.epsg,
        "years": [2022],
        "bands": ("red", "nir"),
        "indices": ("NDVI",),
        "chunk_size": 32,
        "tile_size": 32,
    }


@pytest.fixture(scope="module")
def local_client() -> Iterator[Any]:
    """A local cluster of one worker process with two threads, per test module."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A SeaweedFS S3 server on loopback with bucket ``composites``; killed at the end."""
    from cubehub.demo.s3 import serve_s3

    with serve_s3(
        tmp_path_factory.mktemp("s3"),
        buckets=["composites"],
        access_key=S3_CANARY_KEY,
        secret_key=S3_CANARY_SECRET,
    ) as server:
        yield server


#: A writer process for crash and concurrency tests: ``python writer.py config.json``.
#: Config: {"job": {...job fields...}, "tiles": [ids] or null (all tiles)}.
STORE_WRITER = """
import json, sys
from distributed import Client, LocalCluster
from cubehub.jobspec import make_job
from cubehub.pipeline import run_job

if __name__ == "__main__":
    config = json.loads(open(sys.argv[1]).read())
    job = make_job(**config["job"])
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://", host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as cluster, Client(cluster):
        run_job(job, tiles=config.get("tiles"), show_progress=False)  # the current client
    print("writer done")
"""


@pytest.fixture(scope="session")
def store_writer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the :data:`STORE_WRITER` script."""
    path = tmp_path_factory.mktemp("store-writer") / "writer.py"
    path.write_text(STORE_WRITER)
    return path


@pytest.fixture(scope="session")
def store_drive() -> Any:
    """``drive(job, client, tiles=None) -> (JobResult, tile ids written)``, in this process."""
    from cubehub.pipeline import run_job

    def drive(job: Any, client: Any, tiles: Any = None) -> tuple[Any, list[str]]:
        result = run_job(job, client, tiles=tiles, show_progress=False)
        return result, result.tiles_written

    return drive


@pytest.fixture(scope="session")
def store_reference(
    store_job_fields: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The in-memory result of the ``store_job_fields`` job: per variable, the stored integers
    (CF-encoded exactly as a store holds them) over the whole grid; computed without any store."""
    import numpy as np
    import xarray as xr

    from cubehub.jobspec import make_job
    from cubehub.pipeline import plan_job, tile_composite

    job = make_job(**store_job_fields, output=str(tmp_path_factory.mktemp("unused") / "x.zarr"))
    plan = plan_job(job)
    rows, cols = plan.grid.shape
    out: dict[str, Any] = {}
    for tile in plan.tiles:
        ds = tile_composite(plan, tile).compute(scheduler="threads")
        for name, var in ds.data_vars.items():
            encoded = xr.conventions.encode_cf_variable(var.variable, name=str(name))
            if name not in out:
                shape = tuple(
                    rows if d == "y" else cols if d == "x" else var.sizes[d] for d in var.dims
                )
                out[str(name)] = np.zeros(shape, dtype=encoded.dtype)
            region = tuple(
                slice(*tile.y) if d == "y" else slice(*tile.x) if d == "x" else slice(None)
                for d in var.dims
            )
            out[str(name)][region] = encoded.values
    return {"arrays": out, "tiles": [t.id for t in plan.tiles], "plan": plan}


# --- a store as a job writes it, with one tile left incomplete (maps, sampling, GIS) ---------


@pytest.fixture(scope="session")
def partial_store(
    store_job_fields: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The default job on ``store_archive`` (Zarr format 2, 4 tiles of 32 px) run for three
    tiles: ``r0001c0001`` (the south-east quarter) is never written. Keys: ``url``, ``job``,
    ``incomplete`` (tile id)."""
    from distributed import Client, LocalCluster

    from cubehub.jobspec import make_job
    from cubehub.pipeline import run_job

    url = tmp_path_factory.mktemp("partial") / "composite.zarr"
    job = make_job(**store_job_fields, output=str(url))
    written = ["r0000c0000", "r0000c0001", "r0001c0000"]
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):
        run_job(job, client, tiles=written, show_progress=False)
    return {"url": str(url), "job": job, "incomplete": "r0001c0001"}
