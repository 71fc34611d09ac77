"""A real multi-process cluster: ``dask scheduler`` and two ``dask worker`` processes on loopback.

A demo-archive job runs through the ``address`` backend; workers are SIGKILLed mid-job at
different points and the output must equal the fault-free run exactly; a worker with other
package versions is reported (at connect) or closed (when it joins later); credentials
never reach workers or task graphs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import numpy as np
import psutil
import pytest
import xarray as xr
import yaml
from distributed import Client

from cubehub import __version__
from cubehub.clusters.backends import cluster
from cubehub.clusters.guards import VersionMismatchWarning
from cubehub.demo.archive import Archive
from cubehub.errors import ExitCode, VersionMismatchError
from cubehub.jobspec import CompositeJob, make_job
from cubehub.pipeline import JobResult, plan_job, run_job, tile_composite
from cubehub.seasons import odse_quarters
from cubehub.testing.daskprocs import DaskProcesses, dask_processes

pytestmark = pytest.mark.slow
CANARY = "canary-52c7a0e4-must-not-leave"
ENDPOINT = "http://127.0.0.1:8333"
#: A stored reflectance is rounded to the nearest DN of 1e-4; float32 adds a little.
ROUNDING = 0.5e-4 + 1e-6


def _worker_env() -> dict[str, str]:
    """Workers' own environment: no credentials, no endpoint (those must come from cubehub)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DASK_CUBEHUB"))}


def _fake_version_path(root: Path, version: str) -> Path:
    """A folder that, first on PYTHONPATH, makes ``importlib.metadata`` report cubehub ``version``."""
    dist = root / f"cubehub-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: cubehub\nVersion: {version}\n")
    return root


@dataclass
class Setup:
    archive: Archive
    api: str
    procs: DaskProcesses
    client: Client
    monitor: Client
    tmp: Path

    def job(self, output: Path) -> CompositeJob:
        return make_job(
            stac_api=self.api,
            bbox=self.archive.bbox_lonlat(),
            bounds=self.archive.bounds,
            epsg=self.archive.epsg,
            years=[2022],
            bands=("red", "nir"),
            indices=("NDVI",),
            chunk_size=32,
            tile_size=32,
            output=str(output),
        )

    def transitions(self) -> int:
        return int(
            self.monitor.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)
        )


@pytest.fixture(scope="module")
def setup(
    store_archive: Archive, store_stac_api: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    """The session's archive and STAC API, a scheduler and two workers in processes of their
    own, and two clients of them."""
    tmp = tmp_path_factory.mktemp("processes")
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_SECRET_ACCESS_KEY")}
    # The client's environment: an endpoint to forward, and a secret that must stay here.
    os.environ.update({"AWS_ENDPOINT_URL": ENDPOINT, "AWS_SECRET_ACCESS_KEY": CANARY})
    pids: list[int] = []
    try:
        with (
            dask_processes(tmp / "dask", 2, env=_worker_env()) as procs,
            cluster("address", address=procs.address) as client,
        ):
            client.wait_for_workers(2, timeout=60)
            with Client(procs.address, timeout="30s") as monitor:
                yield Setup(store_archive, store_stac_api, procs, client, monitor, tmp)
            pids = procs.pids()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    alive = [
        p
        for p in pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert not alive, f"dask processes survived: {alive}"


@dataclass
class Reference:
    result: JobResult
    store: Path
    transitions: int


@pytest.fixture(scope="module")
def reference(setup: Setup) -> Reference:
    before = setup.transitions()
    store = setup.tmp / "reference.zarr"
    result = run_job(setup.job(store), setup.client, show_progress=False)
    return Reference(result, store, setup.transitions() - before)


def _assert_same_store(got: Path, expected: Path) -> None:
    a, b = xr.open_zarr(got), xr.open_zarr(expected)
    assert set(a.data_vars) == set(b.data_vars)
    for name in b.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_a_job_runs_on_separate_scheduler_and_worker_processes(
    setup: Setup, reference: Reference
) -> None:
    assert len(reference.result.tiles_written) == 4
    # The work ran on both worker processes, none of which is this process.
    assert len(setup.client.scheduler_info()["workers"]) == 2
    assert os.getpid() not in setup.client.run(os.getpid).values()
    truth = setup.archive.truth()
    out = xr.open_zarr(reference.store)
    calendar = odse_quarters([2022])
    season_of = calendar.assign(truth.time.values)
    clear = truth["clear"].values
    red = np.where(clear, truth["red"].values, np.nan)
    for k, window in enumerate(calendar.windows):
        in_season = season_of == k
        np.testing.assert_array_equal(
            out["valid_count"].sel(season=window.label).values, clear[in_season].sum(axis=0)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels give NaN, as wanted
            expected = np.nanpercentile(red[in_season], [25, 50, 75], axis=0)
        got = out["red"].sel(season=window.label).transpose("percentile", "y", "x").values
        np.testing.assert_allclose(got, expected, atol=ROUNDING, rtol=0)


def test_workers_get_the_settings_but_no_credentials(setup: Setup) -> None:
    seen = setup.client.run(
        lambda: (
            os.environ.get("AWS_ENDPOINT_URL"),
            os.environ.get("AWS_SECRET_ACCESS_KEY"),
            os.environ.get("GDAL_HTTP_MAX_RETRY"),
        )
    )
    assert len(seen) == 2
    assert set(seen.values()) == {(ENDPOINT, None, "5")}


def test_task_graphs_carry_no_credentials(setup: Setup) -> None:
    plan = plan_job(setup.job(setup.tmp / "never-written.zarr"))
    graph = dict(tile_composite(plan, plan.tiles[0]).__dask_graph__())
    assert CANARY.encode() not in cloudpickle.dumps(graph)


def _kill_when(
    setup: Setup, transitions: int, pid: int, fired: threading.Event, stop: threading.Event
) -> None:
    start = setup.transitions()
    while not stop.is_set():
        if setup.transitions() - start >= transitions:
            os.kill(pid, signal.SIGKILL)
            fired.set()
            return
        time.sleep(0.02)


@pytest.mark.parametrize(("seed", "fraction"), [(1, 0.15), (2, 0.5), (3, 0.8)])
def test_a_worker_killed_mid_job_changes_nothing_in_the_output(
    setup: Setup, reference: Reference, seed: int, fraction: float
) -> None:
    setup.client.wait_for_workers(2, timeout=60)  # the nanny restarted the last victim
    pids = setup.client.run(os.getpid)
    victim = pids[sorted(pids)[seed % 2]]
    fired, stop = threading.Event(), threading.Event()
    killer = threading.Thread(
        target=_kill_when,
        args=(setup, int(fraction * reference.transitions), victim, fired, stop),
        daemon=True,
    )
    store = setup.tmp / f"killed-{seed}.zarr"
    killer.start()
    try:
        result = run_job(setup.job(store), setup.client, show_progress=False)
    finally:
        stop.set()
        killer.join(timeout=10)
    assert fired.is_set(), (
        f"the job finished before {fraction:.0%} of its transitions; no worker was killed"
    )
    assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == psutil.STATUS_ZOMBIE
    assert len(result.tiles_written) == 4
    _assert_same_store(store, reference.store)


def test_a_worker_with_other_versions_joining_later_is_closed(setup: Setup) -> None:
    fake = _fake_version_path(setup.tmp / "fake-late", "9.9.9")
    worker = setup.procs.start_worker({**_worker_env(), "PYTHONPATH": str(fake)})
    try:
        worker.wait(timeout=90)  # the cubehub plugin closes it, nanny included
    except subprocess.TimeoutExpired:
        pytest.fail("a worker with cubehub 9.9.9 kept running")
    log = (setup.procs.log_dir / f"worker-{len(setup.procs.workers) - 1}.log").read_text()
    assert f"cubehub {__version__} on the client, 9.9.9 on the worker" in log
    assert len(setup.client.scheduler_info()["workers"]) == 2


def test_version_mismatch_at_connect_names_both_versions(tmp_path: Path) -> None:
    fake = _fake_version_path(tmp_path / "fake", "9.9.9")
    with dask_processes(tmp_path / "dask", 1, env=_worker_env()) as procs:
        procs.start_worker({**_worker_env(), "PYTHONPATH": str(fake)})
        with Client(procs.address, timeout="30s") as plain:
            plain.wait_for_workers(2, timeout=60)
            odd = [
                a
                for a, v in plain.get_versions(packages=["cubehub"])["workers"].items()
                if v["packages"]["cubehub"] == "9.9.9"
            ]
        assert len(odd) == 1
        with pytest.raises(VersionMismatchError) as info, cluster("address", address=procs.address):
            pass
        assert f"cubehub {__version__} on the client, 9.9.9 on the worker {odd[0]}" in str(
            info.value
        )
        assert info.value.exit_code == ExitCode.CLUSTER
        with (
            pytest.warns(VersionMismatchWarning, match="9.9.9"),
            cluster("address", address=procs.address, on_mismatch="warn") as client,
        ):
            assert len(client.scheduler_info()["workers"]) == 2


def test_cubehub_run_through_the_address_backend_and_resume(
    setup: Setup, reference: Reference
) -> None:
    store = setup.tmp / "cli.zarr"
    job_file = setup.tmp / "graz.yaml"
    job_file.write_text(
        yaml.safe_dump(
            setup.job(store).model_dump(mode="json", exclude={"cluster"})
            | {"cluster": {"backend": "address"}}
        )
    )
    cmd = [
        sys.executable,
        "-m",
        "cubehub",
        "run",
        str(job_file),
        "--address",
        setup.procs.address,
        "--quiet",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "4 written, 0 already complete" in first.stdout
    _assert_same_store(store, reference.store)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 written, 4 already complete" in again.stdout


def test_cubehub_run_against_a_dead_scheduler_exits_with_the_cluster_code(
    setup: Setup, tmp_path: Path
) -> None:
    from cubehub.demo.servers import free_port

    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        yaml.safe_dump(
            setup.job(tmp_path / "out.zarr").model_dump(mode="json", exclude={"cluster"})
        )
    )
    env = {**os.environ, "DASK_CUBEHUB__CLUSTER__CONNECT_TIMEOUT": "2"}
    cmd = [
        sys.executable,
        "-m",
        "cubehub",
        "run",
        str(job_file),
        "--backend",
        "address",
        "--address",
        f"tcp://127.0.0.1:{free_port()}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == ExitCode.CLUSTER, proc.stderr[-2000:]
    assert "cannot reach the Dask scheduler" in proc.stderr and "Traceback" not in proc.stderr
    # The store is made (and checked) before any cluster exists; no tile of it is complete.
    from cubehub.output.open import open_composite

    assert not bool(open_composite(str(tmp_path / "out.zarr"))["complete"].any())


def test_fixture_helpers_keep_track_of_every_process(setup: Setup) -> None:
    pids = setup.procs.pids()
    assert setup.procs.scheduler.pid in pids
    # scheduler + per worker its nanny and the worker process it spawned
    assert len([p for p in pids if "spawn_main" in " ".join(psutil.Process(p).cmdline())]) >= 2
