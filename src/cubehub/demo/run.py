"""``cubehub demo``: the whole platform on this machine, on a synthetic archive.

Builds (or reuses) the demo archive of a collection (Sentinel-2 L2A by default, or Landsat
Collection 2 Level-2), serves its COGs over HTTP with range requests and its items through
a real STAC API (``rustac serve``), runs the composite job on a local cluster of worker
processes, writes the Zarr store and a PNG quicklook, and stops every server on the way
out, also on Ctrl-C or error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from cubehub.clusters.backends import cluster, dashboard_link
from cubehub.demo.archive import Archive, ArchiveSpec, build_archive
from cubehub.demo.landsat import LandsatArchive, LandsatSpec, build_landsat_archive
from cubehub.demo.servers import check_port, serve_files, serve_stac_api
from cubehub.errors import InputError, OutputLocationError
from cubehub.jobspec import CompositeJob, make_job
from cubehub.output.open import open_composite
from cubehub.output.quicklook import write_quicklook
from cubehub.output.storage import check_output
from cubehub.pipeline import JobResult, run_job


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its outputs and what the job did."""

    store: Path
    quicklook: Path
    archive: Archive | LandsatArchive
    result: JobResult
    seconds: float


def check_output_dir(path: Path) -> Path:
    """Create ``path`` if needed and make sure it is a writable directory."""
    path = path.expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputLocationError(
            f"cannot create output directory {path}: {exc.strerror}; choose another --output"
        ) from None
    if not path.is_dir():
        raise OutputLocationError(f"output {path} is not a directory; choose another --output")
    # The store's own probe (a real write): os.access says yes to root on read-only mounts.
    check_output(str(path / "composite.zarr"))
    return path


#: The collections ``cubehub demo`` has an archive of, and each one's default size.
DEMO_COLLECTIONS = {"sentinel-2-l2a": 256, "landsat-c2-l2": 128}


def demo_job(archive: Archive | LandsatArchive, stac_api: str, output: Path) -> CompositeJob:
    """The demo's composite job over the whole archive window, on its native grid: every
    band of the collection's demo (Landsat: the seven ODSE bands at 30 m), p25/p50/p75 of
    the four ODSE seasons of the archive's year, and NDVI."""
    # Bands and resolution are the collection profile's defaults (Landsat: the ODSE seven).
    collection = "landsat-c2-l2" if isinstance(archive, LandsatArchive) else "sentinel-2-l2a"
    return make_job(
        stac_api=stac_api,
        collection=collection,
        bbox=archive.bbox_lonlat(),
        bounds=archive.bounds,
        epsg=archive.epsg,
        years=[archive.spec.year],
        output=str(output),
        overwrite=True,
    )


def run_demo(
    output_dir: Path,
    *,
    size: int | None = None,
    collection: str = "sentinel-2-l2a",
    port: int = 0,
    show_progress: bool = True,
    console: Console | None = None,
) -> DemoResult:
    """Run the demo; every input is checked before the archive is built or a server starts.

    Args:
        output_dir: where the archive, the Zarr store and the quicklook go.
        size: archive edge in pixels of the collection's finest band: 10 m Sentinel-2
            (multiple of 32, default 256: 2.56 km) or 30 m Landsat (multiple of 16,
            default 128: 3.84 km).
        collection: ``sentinel-2-l2a`` (default) or ``landsat-c2-l2`` (the ODSE product
            as published: seven bands, p25/p50/p75 of four seasons, on Landsat 7/8/9).
        port: TCP port of the STAC API on 127.0.0.1; 0 (default) picks a free one.
    """
    console = console or Console(stderr=True)
    started = time.perf_counter()
    if collection not in DEMO_COLLECTIONS:
        raise InputError(
            f"the demo has no archive of collection {collection!r}; choose "
            f"{' or '.join(DEMO_COLLECTIONS)}"
        )
    size = DEMO_COLLECTIONS[collection] if size is None else size
    # Validates the size before anything is built.
    spec = ArchiveSpec(size=size) if collection == "sentinel-2-l2a" else LandsatSpec(size=size)
    output_dir = check_output_dir(output_dir)
    check_port(port)

    with Progress(console=console, disable=not show_progress, transient=True) as bar:
        task = bar.add_task("demo archive", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        archive: Archive | LandsatArchive = (
            build_archive(output_dir / "archive", spec, progress=advance)
            if isinstance(spec, ArchiveSpec)
            else build_landsat_archive(output_dir / "archive-landsat", spec, progress=advance)
        )
    # One store per collection, so that both demos can share an output folder.
    name = "composite" if collection == "sentinel-2-l2a" else "composite-landsat"
    store = output_dir / f"{name}.zarr"
    items_file = output_dir / f"archive-items{name.removeprefix('composite')}.json"
    with serve_files(archive.root) as files:
        archive.write_item_collection(items_file, files.url)
        with (
            serve_stac_api(items_file, archive.collection_dict(), port=port) as api,
            cluster("local") as client,
        ):
            console.print(f"STAC API  {api.url}   COGs  {files.url}")
            console.print(f"Dask dashboard  {dashboard_link(client)}")
            job = demo_job(archive, api.url, store)
            result = run_job(job, client, show_progress=show_progress)
            console.print(
                f"read {files.stats.range_requests} HTTP range requests, "
                f"{files.stats.bytes_sent / 2**20:.1f} MiB"
            )
    quicklook = write_quicklook(
        open_composite(str(store)), output_dir / f"quicklook{name.removeprefix('composite')}.png"
    )
    return DemoResult(store, quicklook, archive, result, time.perf_counter() - started)
