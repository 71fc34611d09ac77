"""The demo archive served on this machine, for notebooks, tutorials and the browser tests.

:func:`start_demo` builds (or reuses) the synthetic Sentinel-2 archive of
:mod:`cubehub.demo.archive` (or the Landsat Collection 2 archive of
:mod:`cubehub.demo.landsat`) for one or more years, serves its COGs over HTTP with range
requests and its items through a real STAC API (``rustac serve``), and optionally an S3
server (SeaweedFS) for outputs, all on 127.0.0.1. A notebook keeps the servers across cells
and stops them in its last cell with ``demo.close()``; a script uses ``with start_demo()``.
Servers left running are stopped when the kernel exits.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import xarray as xr

from cubehub.demo.archive import Archive, ArchiveSpec, build_archive
from cubehub.demo.landsat import LandsatArchive, LandsatSpec, build_landsat_archive
from cubehub.demo.s3 import S3Server, serve_s3
from cubehub.demo.servers import serve_files, serve_stac_api
from cubehub.errors import InputError

__all__ = ["DemoServers", "start_demo"]


@dataclass
class DemoServers:
    """The demo archive served on loopback; from :func:`start_demo`. Call :meth:`close`."""

    archives: dict[int, Archive | LandsatArchive]
    """The archive of each year, by year."""
    stac_api: str
    """URL of the STAC API serving every year's items (collection ``sentinel-2-l2a`` or
    ``landsat-c2-l2``)."""
    files_url: str
    """Base URL of the COGs; year ``Y``'s archive root is served under ``<files_url>/Y``."""
    s3: S3Server | None
    """The S3 server for outputs, when asked for; its credentials are in ``os.environ``."""
    _stack: ExitStack = field(repr=False)

    @property
    def archive(self) -> Archive | LandsatArchive:
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
        """The cloud-free truth of ``year`` (default: the last), see :meth:`Archive.truth`
        and :meth:`LandsatArchive.truth`."""
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


def _collection(archives: Iterable[Archive | LandsatArchive]) -> dict[str, Any]:
    """The STAC Collection over all ``archives``: the first's, with the union of extents."""
    collections = [a.collection_dict() for a in archives]
    merged = collections[0]
    boxes = [c["extent"]["spatial"]["bbox"][0] for c in collections]
    intervals = [c["extent"]["temporal"]["interval"][0] for c in collections]
    merged["extent"] = {
        "spatial": {
            "bbox": [
                [
                    min(b[0] for b in boxes),
                    min(b[1] for b in boxes),
                    max(b[2] for b in boxes),
                    max(b[3] for b in boxes),
                ]
            ]
        },
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


def _spec(
    collection: str, size: int, year: int, revisit_days: int | None, seed: int
) -> ArchiveSpec | LandsatSpec:
    """One year's archive spec (validated): the land of ``seed``, the weather of ``seed + year``."""
    if collection == "sentinel-2-l2a":
        revisit = 5 if revisit_days is None else revisit_days
        return ArchiveSpec(
            size=size, year=year, revisit_days=revisit, seed=seed + year, land_seed=seed
        )
    if collection == "landsat-c2-l2":
        if revisit_days is not None:
            raise InputError(
                "revisit_days is for the Sentinel-2 demo; Landsat overpasses follow each "
                "satellite's 16-day repeat: leave it out"
            )
        return LandsatSpec(size=size, year=year, seed=seed + year, land_seed=seed)
    raise InputError(
        f"the demo has no archive of collection {collection!r}; choose "
        "'sentinel-2-l2a' or 'landsat-c2-l2'"
    )


def start_demo(
    root: Path | str = "demo-archive",
    *,
    size: int = 64,
    years: Iterable[int] = (2022,),
    revisit_days: int | None = None,
    seed: int = 0,
    collection: str = "sentinel-2-l2a",
    s3_buckets: Iterable[str] = (),
) -> DemoServers:
    """Build (or reuse) the demo archive under ``root`` and serve it on 127.0.0.1.

    Args:
        root: folder of the archives, one sub-folder per year; an archive already there
            with the same settings is reused (building one year of size 64 takes a few s).
            Give each collection its own root: a year's folder holds one archive.
        size: archive edge in pixels of the collection's finest band, default 64: 10 m
            Sentinel-2 (a multiple of 32; 640 m) or 30 m Landsat (a multiple of 16; 1.92 km).
        years: ODSE years, each one archive of acquisitions from 2 Dec of the year before
            to 1 Dec; default (2022,). The land cover is the same every year (its seed is
            ``seed``); clouds and noise differ from year to year (seed ``seed + year``).
            Landsat's satellites are those flying each year (2021: 7, 8 and 9; 2022: 8, 9).
        revisit_days: Sentinel-2 only: days between acquisitions, 1..16; default 5 (73 a
            year). Tests use 16 (23 a year) to run faster. Landsat overpasses follow each
            satellite's 16-day repeat; giving it for Landsat is an error.
        seed: seed of the synthesis, default 0.
        collection: ``sentinel-2-l2a`` (default, :mod:`cubehub.demo.archive`) or
            ``landsat-c2-l2`` (:mod:`cubehub.demo.landsat`, Earth Search v1 layout).
        s3_buckets: start an S3 server with these buckets (empty, the default: no S3) and
            put its endpoint and credentials in ``os.environ``, so that ``s3://`` URLs work
            here and on Dask workers started afterwards. Its data lives in ``root/s3`` for
            one session: a new start begins with empty buckets.

    Example:
        >>> import tempfile
        >>> from cubehub import search_items
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     demo = start_demo(Path(tmp), size=32, revisit_days=16)
        ...     items = search_items(demo.stac_api, collections=["sentinel-2-l2a"], bbox=demo.bbox)
        ...     demo.close()
        >>> len(items)  # 23 dates, one of them also reprocessed (_0_ and _1_)
        24
    """
    wanted = sorted(set(years))
    if not wanted:
        raise InputError("give at least one year for the demo archive, e.g. years=[2022]")
    specs = {year: _spec(collection, size, year, revisit_days, seed) for year in wanted}
    root = Path(root).absolute()
    archives: dict[int, Archive | LandsatArchive] = {
        year: build_archive(root / str(year), spec)
        if isinstance(spec, ArchiveSpec)
        else build_landsat_archive(root / str(year), spec)
        for year, spec in specs.items()
    }
    stack = ExitStack()
    try:
        files = stack.enter_context(serve_files(root))
        items = root / "items.json"
        features = [
            item for year, a in archives.items() for item in a.item_dicts(f"{files.url}/{year}")
        ]
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
