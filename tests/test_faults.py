"""Faults end cleanly: ``cubehub run`` meets them on real worker processes and exits with the
documented code and one line naming the cause, without a traceback, and never hangs.

Every run here is the real command line in a subprocess. The work runs on ``dask worker``
processes (address backend) or on a local cluster's worker processes, so every error
crosses distributed's pickle as it does in production. The archive is a copy of the
session's small one, served over HTTP and listed in a static catalog file, so tests may
damage it (and restore it, restarting the workers, whose GDAL caches what it read).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from distributed import Client

from cubehub.demo.servers import FileServer, free_port, serve_files
from cubehub.errors import ExitCode
from cubehub.output.layout import MISSING_DIR
from cubehub.testing.daskprocs import DaskProcesses, dask_processes

pytestmark = pytest.mark.slow

#: Parts of the lines of ``cubehub run`` besides errors: log lines (cubehub.cli.logs.FORMAT)
#: and the progress bar.
_LOG_LINE = (" INFO ", " WARNING ", " ERROR ", " DEBUG ", "━")
CLI = (sys.executable, "-m", "cubehub")  # as notebooks run it (cubehub.notebook.command)


def _worker_env() -> dict[str, str]:
    """Workers' own environment: no object-store credentials (and no cloud metadata lookups)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DASK_CUBEHUB"))}
    return env | {"AWS_EC2_METADATA_DISABLED": "true"}


@dataclass
class Site:
    """A damageable copy of the archive, its static catalog, and one worker process."""

    root: Path
    items: list[dict[str, Any]]
    catalog: Path
    files: FileServer
    procs: DaskProcesses
    fields: dict[str, Any]
    tmp: Path

    def rel(self, item: dict[str, Any], band: str) -> str:
        """Path under ``root`` of an item's asset."""
        return str(item["assets"][band]["href"]).removeprefix(self.files.url + "/")

    def restart_workers(self) -> None:
        """Fresh worker processes: GDAL keeps what it read of a damaged file per process."""
        with Client(self.procs.address, timeout="30s") as client:
            client.restart(wait_for_workers=True)


@pytest.fixture(scope="module")
def site(store_archive: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("faults")
    root = tmp / "archive"
    shutil.copytree(store_archive.root, root)
    with (
        serve_files(root) as files,
        dask_processes(tmp / "dask", 1, nthreads=2, env=_worker_env()) as procs,
    ):
        catalog = store_archive.write_item_collection(tmp / "items.json", files.url)
        fields = {
            "stac_api": str(catalog),
            "bbox": list(store_archive.bbox_lonlat()),
            "bounds": list(store_archive.bounds),
            "epsg": store_archive.epsg,
            "years": [2022],
            "bands": ["red", "nir"],
            "indices": ["NDVI"],
            "chunk_size": 32,
            "tile_size": 32,
        }
        with Client(procs.address, timeout="30s") as client:
            client.wait_for_workers(1, timeout=120)
        items = json.loads(catalog.read_text())["features"]
        yield Site(root, items, catalog, files, procs, fields, tmp)


def cubehub(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The real command line, in a subprocess."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def write_job(path: Path, fields: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(fields))
    return path


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line besides log lines on stderr, an error; no traceback anywhere."""
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    lines = [
        line
        for line in proc.stderr.splitlines()
        if line.strip() and not any(level in line for level in _LOG_LINE)
    ]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr[-4000:]
    return lines[0]


@contextmanager
def damaged(site: Site, rel: str, content: bytes | None) -> Iterator[None]:
    """Replace (or with None remove) one archive file, restoring it afterwards."""
    path = site.root / rel
    original = path.read_bytes()
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    try:
        yield
    finally:
        path.write_bytes(original)
        site.restart_workers()


def test_an_unreadable_asset_on_a_worker_exits_3_naming_it(site: Site, tmp_path: Path) -> None:
    rel = site.rel(site.items[3], "red")
    original = (site.root / rel).read_bytes()
    job = write_job(tmp_path / "job.yaml", {**site.fields, "output": str(tmp_path / "o.zarr")})
    with damaged(site, rel, original[: len(original) // 3]):  # a truncated COG
        proc = cubehub("run", str(job), "--address", site.procs.address, "--backend", "address")
    assert proc.returncode == ExitCode.DATA, proc.stderr[-4000:]
    line = error_line(proc)
    assert rel in line and "cannot read" in line and "on_read_error: missing" in line


def test_missing_assets_are_recorded_reported_and_exactly_their_tiles_retried(
    site: Site, tmp_path: Path
) -> None:
    # A grid 16 px east of the archive: its western tiles meet the swath-edge items, whose
    # footprints cover the western 62 % of the archive, its eastern tiles do not.
    xmin, ymin, xmax, ymax = site.fields["bounds"]
    east = max(i["bbox"][2] for i in site.items)
    edge = next(i for i in site.items if i["bbox"][2] < east - 1e-4)
    rel = site.rel(edge, "red")
    url = tmp_path / "o.zarr"
    fields = {
        **site.fields,
        "bounds": [xmin + 160, ymin, xmax + 160, ymax],
        "on_read_error": "missing",
        "output": str(url),
    }
    job = write_job(tmp_path / "job.yaml", fields)
    run = ["run", str(job), "--address", site.procs.address, "--backend", "address", "--quiet"]
    with damaged(site, rel, None):  # the asset answers 404
        first = cubehub(*run)
    assert first.returncode == 0, first.stderr[-4000:]
    western = ["r0000c0000", "r0001c0000"]
    assert f"in 2 tile(s) ({', '.join(western)})" in first.stdout, first.stdout
    assert f"{site.files.url}/{rel}" in first.stdout
    records = {p.stem: json.loads(p.read_text()) for p in (url / MISSING_DIR).glob("*.json")}
    assert sorted(records) == western
    assert all(r["missing_assets"] == [f"{site.files.url}/{rel}"] for r in records.values())
    info = cubehub("info", str(url))
    assert "Missing      1 asset(s)" in info.stdout and "run the job again" in info.stdout

    def chunk_times() -> dict[str, int]:
        chunks = (p for p in (url / "red").rglob("*") if p.is_file() and p.name[0].isdigit())
        return {str(p.relative_to(url)): p.stat().st_mtime_ns for p in chunks}

    before = chunk_times()
    second = cubehub(*run)
    assert second.returncode == 0, second.stderr[-4000:]
    assert "2 written, 2 already complete" in second.stdout and "Missing" not in second.stdout
    assert not list((url / MISSING_DIR).glob("*.json"))
    after = chunk_times()
    rewritten = {p for p in after if before.get(p) != after[p]}
    # Chunk keys end in the x block (red/0.0.1.0 in Zarr 2, red/c/0/0/1/0 in Zarr 3):
    # only the western column (x block 0) changed.
    x_blocks = {re.split(r"[./]", p)[-1] for p in rewritten}
    assert rewritten and x_blocks == {"0"}, sorted(rewritten)


def test_workers_without_credentials_exit_2_naming_the_tile(
    site: Site, s3_server: Any, tmp_path: Path
) -> None:
    store = "s3://composites/faults-no-credentials.zarr"
    job = write_job(tmp_path / "job.yaml", {**site.fields, "output": store})
    # This process has the credentials (the output check passes, the store is created);
    # the workers have only the endpoint, forwarded by cubehub.
    proc = cubehub(
        "run",
        str(job),
        "--address",
        site.procs.address,
        "--backend",
        "address",
        "--quiet",
        env=s3_server.env(),
    )
    assert proc.returncode == ExitCode.BAD_INPUT, proc.stderr[-4000:]
    line = error_line(proc)
    assert "tile r000" in line and "not written" in line and store in line
    assert "no credentials found" in line and "every Dask worker" in line


def test_an_object_store_dying_mid_job_exits_2_naming_it(site: Site, tmp_path: Path) -> None:
    from cubehub.demo.s3 import serve_s3

    store = "s3://composites/faults-endpoint.zarr"
    job = write_job(tmp_path / "job.yaml", {**site.fields, "output": store})
    with serve_s3(tmp_path / "s3", buckets=["composites"]) as server:
        proc = subprocess.Popen(
            [*CLI, "run", str(job), "--backend", "local", "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **server.env(), "DASK_CUBEHUB__CLUSTER__LOCAL__N_WORKERS": "1"},
        )
        assert proc.stderr is not None
        seen: list[str] = []
        for line in proc.stderr:  # the store exists and the cluster is up: kill the endpoint
            seen.append(line)
            if " cluster tcp://" in line:
                os.killpg(server.process.pid, signal.SIGKILL)
                break
        out, rest = proc.communicate(timeout=600)
    finished = subprocess.CompletedProcess(proc.args, proc.returncode, out, "".join(seen) + rest)
    assert proc.returncode == ExitCode.BAD_INPUT, finished.stderr[-4000:]
    line = error_line(finished)
    assert "the object store is unreachable" in line and store in line and "tile r000" in line


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -rm (user and mount namespaces)")
def test_a_full_disk_exits_2_naming_the_store(site: Site, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    url = disk / "o.zarr"
    job = write_job(tmp_path / "job.yaml", {**site.fields, "output": str(url)})
    create = tmp_path / "create_store.py"
    create.write_text(
        "import sys\n"
        "from cubehub.jobspec import load_job\n"
        "from cubehub.output.zarr_store import CompositeStore\n"
        "from cubehub.pipeline import plan_job, template, tile_composite\n"
        "job = load_job(sys.argv[1])\n"
        "plan = plan_job(job)\n"
        "first = tile_composite(plan, plan.tiles[0])\n"
        "CompositeStore.open_or_create(job.output, template(first, plan.grid, job.chunk_size),"
        " plan.tiles)\n"
    )
    # In a mount namespace of its own: a 4 MiB disk holding the store, then filled up; the
    # job's workers (processes of a local cluster) then find no space for their chunks.
    script = (
        f"mount -t tmpfs -o size=4m tmpfs {disk} && "
        f"{sys.executable} {create} {job} && "
        f"(dd if=/dev/zero of={disk}/filler bs=64k 2>/dev/null; true) && "
        f"exec {sys.executable} -m cubehub run {job} --backend local --quiet"
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DASK_CUBEHUB__CLUSTER__LOCAL__N_WORKERS": "1"},
    )
    assert proc.returncode == ExitCode.BAD_INPUT, proc.stderr[-4000:]
    line = error_line(proc)
    assert "no space left" in line and str(url) in line and "tile r000" in line


def test_a_scheduler_killed_mid_run_exits_4_in_a_few_lines(site: Site, tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.yaml", {**site.fields, "output": str(tmp_path / "o.zarr")})
    with dask_processes(tmp_path / "dask", 1, nthreads=2, env=_worker_env()) as procs:
        proc = subprocess.Popen(
            [*CLI, "run", str(job), "--backend", "address", "--address", procs.address],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5"},
        )
        assert proc.stderr is not None
        seen: list[str] = []
        for line in proc.stderr:
            seen.append(line)
            if " cluster tcp://" in line:
                time.sleep(2)  # the tiles are submitted and running
                os.killpg(procs.scheduler.pid, signal.SIGKILL)
                break
        out, rest = proc.communicate(timeout=600)
    finished = subprocess.CompletedProcess(proc.args, proc.returncode, out, "".join(seen) + rest)
    assert proc.returncode == ExitCode.CLUSTER, finished.stderr[-4000:]
    assert "lost the connection to the Dask scheduler" in error_line(finished)
    assert len(finished.stderr.splitlines()) <= 12, finished.stderr
    # The scheduler runs without a dashboard: no link to one is printed.
    assert "dashboard" not in finished.stderr


@pytest.fixture(scope="module")
def silent_api() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"stac_api": "silent"}, ExitCode.DATA, "did not answer the open within 1 s, 2 tries"),
        ({"output": "/proc/cubehub-cannot-write/o.zarr"}, ExitCode.BAD_INPUT, "not writable"),
        (
            {"collection": "sentinel-2-l2b"},
            ExitCode.BAD_INPUT,
            "unknown collection 'sentinel-2-l2b'",
        ),
        ({"years": [2099]}, ExitCode.BAD_INPUT, "years [2099] have not begun"),
    ],
    ids=["stac-api-never-answers", "unwritable-output", "unknown-collection", "future-year"],
)
def test_what_needs_no_pixels_is_checked_before_any_cluster_and_never_hangs(
    site: Site,
    silent_api: str,
    tmp_path: Path,
    change: dict[str, Any],
    code: ExitCode,
    message: str,
) -> None:
    if change.get("stac_api") == "silent":
        change = {"stac_api": silent_api}
    fields = {**site.fields, "output": str(tmp_path / "o.zarr"), **change}
    job = write_job(tmp_path / "job.yaml", fields)
    # A scheduler nobody listens on: reaching the cluster first would exit 4.
    dead = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = cubehub(
        "run",
        str(job),
        "--backend",
        "address",
        "--address",
        dead,
        env={
            "DASK_CUBEHUB__CLUSTER__CONNECT_TIMEOUT": "1",
            "DASK_CUBEHUB__STAC__CONNECT_TIMEOUT": "1",
            "DASK_CUBEHUB__STAC__READ_TIMEOUT": "1",
            "DASK_CUBEHUB__STAC__RETRIES": "1",
        },
        timeout=300,
    )
    seconds = time.monotonic() - started
    assert proc.returncode == code, proc.stderr[-4000:]
    line = error_line(proc)
    assert message in line, line
    if "stac_api" in change:
        assert silent_api in line and seconds < 120, seconds
    assert not (tmp_path / "o.zarr").exists()
