"""Notebook helpers: the demo archive served on this machine, Dask progress, one-line errors.

:func:`start_demo` builds (or reuses) the synthetic Sentinel-2 archive of
:mod:`cubehub.testing.archive` for one or more years, serves its COGs over HTTP with range
requests and its items through a real STAC API (``rustac serve``), and optionally an S3
server (SeaweedFS) for outputs, all on 127.0.0.1. A notebook keeps the servers across cells
and stops them in its last cell with ``demo.close()``; a script uses ``with start_demo()``.
Servers left running are stopped when the kernel exits.

``%load_ext cubehub.notebook`` shows cubehub's own errors (bad input, data, cluster) as one
line with what to do, as the command line does, instead of a traceback.

:func:`show_progress` is Dask's progress bar for work on a cluster: the notebook widget when
ipywidgets is installed, Dask's text bar (which waits for the work) otherwise.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import xarray as xr
from distributed import futures_of, progress

from cubehub.errors import CubehubError, InputError
from cubehub.progress import have_widgets, in_notebook
from cubehub.testing.archive import Archive, ArchiveSpec, build_archive
from cubehub.testing.s3 import S3Server, serve_s3
from cubehub.testing.servers import serve_files, serve_stac_api

__all__ = ["DemoServers", "load_ipython_extension", "show_progress", "start_demo"]


@dataclass
class DemoServers:
    """The demo archive served on loopback; from :func:`start_demo`. Call :meth:`close`."""

    archives: dict[int, Archive]
    """The archive of each year, by year."""
    stac_api: str
    """URL of the STAC API serving every year's items (collection ``sentinel-2-l2a``)."""
    files_url: str
    """Base URL of the COGs; year ``Y``'s archive root is served under ``<files_url>/Y``."""
    s3: S3Server | None
    """The S3 server for outputs, when asked for; its credentials are in ``os.environ``."""
    _stack: ExitStack = field(repr=False)

    @property
    def archive(self) -> Archive:
        """The archive of the last year."""
        return self.archives[max(self.archives)]

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """The archive window as (west, south, east, north) in degrees, for a search."""
        return self.archive.bbox_lonlat()

    @property
    def epsg(self) -> int:
        """CRS of the archive's pixel grid (32633, UTM zone 33N)."""
        return self.archive.epsg

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """The window (xmin, ymin, xmax, ymax) in metres in :attr:`epsg`: a job on these
        bounds has exactly the truth's pixel grid."""
        return self.archive.bounds

    def truth(self, year: int | None = None) -> xr.Dataset:
        """The cloud-free truth of ``year`` (default: the last), see :meth:`Archive.truth`."""
        chosen = max(self.archives) if year is None else year
        if chosen not in self.archives:
            raise InputError(f"the demo serves years {sorted(self.archives)}, not {chosen}")
        return self.archives[chosen].truth()

    def close(self) -> None:
        """Stop every server (also restores the environment the S3 server changed)."""
        self._stack.close()
        atexit.unregister(self.close)

    def __enter__(self) -> DemoServers:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _collection(archives: Iterable[Archive]) -> dict[str, Any]:
    """The STAC Collection over all ``archives``: the first's, with the union of extents."""
    collections = [a.collection_dict() for a in archives]
    merged = collections[0]
    boxes = [c["extent"]["spatial"]["bbox"][0] for c in collections]
    intervals = [c["extent"]["temporal"]["interval"][0] for c in collections]
    merged["extent"] = {
        "spatial": {"bbox": [[
            min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)
        ]]},
        "temporal": {"interval": [[min(i[0] for i in intervals), max(i[1] for i in intervals)]]},
    }
    return merged


def _set_environ(stack: ExitStack, values: dict[str, str]) -> None:
    """Set environment variables now; the stack restores the old values when it closes."""
    old = {name: os.environ.get(name) for name in values}

    def restore() -> None:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    stack.callback(restore)
    os.environ.update(values)


def start_demo(
    root: Path | str = "demo-archive",
    *,
    size: int = 64,
    years: Iterable[int] = (2022,),
    revisit_days: int = 5,
    seed: int = 0,
    s3_buckets: Iterable[str] = (),
) -> DemoServers:
    """Build (or reuse) the demo archive under ``root`` and serve it on 127.0.0.1.

    Args:
        root: folder of the archives, one sub-folder per year; an archive already there
            with the same settings is reused (building one year of size 64 takes a few s).
        size: archive edge in 10 m pixels, a multiple of 32; default 64 (640 m).
        years: ODSE years, each one archive of acquisitions from 2 Dec of the year before
            to 1 Dec; default (2022,). The land cover is the same every year (same seed).
        revisit_days: days between acquisitions, 1..16; default 5 (73 a year). Tests use
            16 (23 a year) to run faster.
        seed: seed of the synthesis, default 0.
        s3_buckets: start an S3 server with these buckets (empty, the default: no S3) and
            put its endpoint and credentials in ``os.environ``, so that ``s3://`` URLs work
            here and on Dask workers started afterwards. Its data lives in ``root/s3`` for
            one session: a new start begins with empty buckets.

    Example:
        >>> demo = start_demo("demo-archive", size=64)  # doctest: +SKIP
        >>> items = search_items(demo.stac_api, collections=["sentinel-2-l2a"], bbox=demo.bbox)  # doctest: +SKIP
        >>> demo.close()  # doctest: +SKIP
    """
    wanted = sorted(set(years))
    if not wanted:
        raise InputError("give at least one year for the demo archive, e.g. years=[2022]")
    specs = {year: ArchiveSpec(size=size, year=year, revisit_days=revisit_days, seed=seed) for year in wanted}  # validates
    root = Path(root).absolute()
    archives = {year: build_archive(root / str(year), spec) for year, spec in specs.items()}
    stack = ExitStack()
    try:
        files = stack.enter_context(serve_files(root))
        items = root / "items.json"
        features = [item for year, a in archives.items() for item in a.item_dicts(f"{files.url}/{year}")]
        items.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        api = stack.enter_context(serve_stac_api(items, _collection(archives.values())))
        s3 = None
        if buckets := list(s3_buckets):
            shutil.rmtree(root / "s3", ignore_errors=True)  # the demo's S3 data lasts one session
            s3 = stack.enter_context(serve_s3(root / "s3", buckets=buckets))
            _set_environ(stack, s3.env())
    except BaseException:
        stack.close()
        raise
    servers = DemoServers(archives, api.url, files.url, s3, stack)
    atexit.register(servers.close)  # a kernel that exits without close() stops them too
    return servers


def show_progress(*work: Any) -> Any:
    """Show Dask's progress of ``work`` on the cluster.

    Args:
        work: futures, or Dask collections persisted on a client (``client.persist(ds)``).

    Returns:
        In a notebook with ipywidgets: Dask's progress widget, at once; make it the cell's
        last expression and it updates while the work runs and the notebook stays free.
        Otherwise None, after Dask's text bar ran to the end of the work (text streams live
        into a notebook, so this needs no widget library).

    A failed task ends the bar; its error is raised by ``.result()`` or ``.compute()``.

    Example:
        >>> composite = client.persist(composite)  # doctest: +SKIP
        >>> show_progress(composite)  # doctest: +SKIP
    """
    futures = futures_of(list(work))
    if not futures:
        raise InputError("nothing to show: pass futures or collections persisted on a Dask client")
    if in_notebook() and have_widgets():
        return progress(futures, notebook=True)
    progress(futures, notebook=False)
    return None


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext cubehub.notebook``: cubehub's own errors show as one line, without a traceback.

    Their message already says what was wrong and how to fix it; the traceback of an
    :class:`~cubehub.errors.CubehubError` only hides it. Any other exception keeps its full
    traceback, and ``%tb`` still shows the last one in full.
    """
    ipython.set_custom_exc((CubehubError,), _one_line)


def _one_line(shell: Any, etype: type[BaseException], value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # for %tb
    stb: list[str] = shell.InteractiveTB.get_exception_only(etype, value)
    shell._showtraceback(etype, value, stb)
    return stb
