"""``cubehub demo``: the whole platform on this machine, on a synthetic archive.

Builds (or reuses) the demo archive, serves its COGs over HTTP with range requests and its
items through a real STAC API (``rustac serve``), runs the composite job on a local
cluster of worker processes, writes the Zarr store and a PNG quicklook, and stops every
server on the way out, also on Ctrl-C or error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from cubehub.clusters import cluster
from cubehub.errors import OutputLocationError
from cubehub.jobspec import make_job
from cubehub.pipeline import JobResult, run_job
from cubehub.quicklook import write_quicklook
from cubehub.store import check_output, open_composite
from cubehub.testing.archive import Archive, ArchiveSpec, build_archive
from cubehub.testing.servers import check_port, serve_files, serve_stac_api


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its outputs and what the job did."""

    store: Path
    quicklook: Path
    archive: Archive
    result: JobResult
    seconds: float


def check_output_dir(path: Path) -> Path:
    """Create ``path`` if needed and make sure it is a writable directory."""
    path = path.expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputLocationError(f"cannot create output directory {path}: {exc.strerror}; choose another --output") from None
    if not path.is_dir():
        raise OutputLocationError(f"output {path} is not a directory; choose another --output")
    # The store's own probe (a real write): os.access says yes to root on read-only mounts.
    check_output(str(path / "composite.zarr"))
    return path


def run_demo(
    output_dir: Path,
    *,
    size: int = 256,
    port: int = 0,
    show_progress: bool = True,
    console: Console | None = None,
) -> DemoResult:
    """Run the demo; every input is checked before the archive is built or a server starts.

    Args:
        output_dir: where the archive, the Zarr store and the quicklook go.
        size: archive edge in 10 m pixels (multiple of 32), default 256 (2.56 km).
        port: TCP port of the STAC API on 127.0.0.1; 0 (default) picks a free one.
    """
    console = console or Console(stderr=True)
    started = time.perf_counter()
    spec = ArchiveSpec(size=size)  # validates the size
    output_dir = check_output_dir(output_dir)
    check_port(port)

    with Progress(console=console, disable=not show_progress, transient=True) as bar:
        task = bar.add_task("demo archive", total=None)
        archive = build_archive(
            output_dir / "archive", spec, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    store = output_dir / "composite.zarr"
    items_file = output_dir / "archive-items.json"
    with serve_files(archive.root) as files:
        archive.write_item_collection(items_file, files.url)
        with serve_stac_api(items_file, archive.collection_dict(), port=port) as api, cluster("local") as client:
            console.print(f"STAC API  {api.url}   COGs  {files.url}")
            console.print(f"Dask dashboard  {client.dashboard_link}")
            job = make_job(
                stac_api=api.url,
                collection="sentinel-2-l2a",
                bbox=archive.bbox_lonlat(),
                bounds=archive.bounds,
                epsg=archive.epsg,
                years=[spec.year],
                output=str(store),
                overwrite=True,
            )
            result = run_job(job, client, show_progress=show_progress)
            console.print(
                f"read {files.stats.range_requests} HTTP range requests, "
                f"{files.stats.bytes_sent / 2**20:.1f} MiB"
            )
    quicklook = write_quicklook(open_composite(str(store)), output_dir / "quicklook.png")
    return DemoResult(store, quicklook, archive, result, time.perf_counter() - started)
