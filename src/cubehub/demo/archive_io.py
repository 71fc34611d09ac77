"""What every synthetic archive shares on disk: COGs, item JSON, the truth Zarr, the manifest.

The Sentinel-2 archive (:mod:`cubehub.demo.archive`) and the Landsat one
(:mod:`cubehub.demo.landsat`) differ in their plan, pixels and STAC layout; they write and
read their files through this module:

* :func:`write_cog`: one-band Cloud-Optimized GeoTIFF as the providers publish them
  (DEFLATE, 256 px tiles, overviews);
* :class:`TruthWriter`: the truth as a local Zarr group, fed one date at a time;
* :func:`write_manifest`: the manifest, written last, whose presence means "complete";
* :class:`StoredArchive`: reading a built archive back (completeness, items with their
  hrefs under a base URL, the item collection a STAC API serves).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pyproj
import rasterio
import zarr
from rasterio.transform import Affine

from cubehub.errors import DataError, InputError

__all__ = [
    "COG_TYPE",
    "MANIFEST_NAME",
    "TRUTH_NAME",
    "Raster",
    "StoredArchive",
    "TruthWriter",
    "bbox_of",
    "build_once",
    "iso",
    "lonlat_polygon",
    "write_cog",
    "write_item",
    "write_manifest",
]

MANIFEST_NAME = "cubehub-archive.json"
TRUTH_NAME = "truth.zarr"
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
#: Bytes of one truth band buffered before a write (bounds memory at large sizes).
_TRUTH_BLOCK_BYTES = 16 * 2**20


def iso(moment: datetime) -> str:
    """``2022-01-05T10:07:20.123000Z``: the UTC time format of the providers' items."""
    return f"{moment:%Y-%m-%dT%H:%M:%S.%f}Z"


def lonlat_polygon(ring: Sequence[tuple[float, float]], epsg: int) -> dict[str, Any]:
    """GeoJSON polygon (lon/lat) of a ring of (x, y) corners in ``epsg``, closed."""
    to_lonlat = pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)
    coords = [list(to_lonlat.transform(x, y)) for x, y in ring]
    return {"type": "Polygon", "coordinates": [[*coords, coords[0]]]}


def bbox_of(geometry: dict[str, Any]) -> list[float]:
    """[west, south, east, north] of a GeoJSON polygon."""
    lons, lats = zip(*geometry["coordinates"][0], strict=True)
    return [min(lons), min(lats), max(lons), max(lats)]


def write_cog(
    path: Path,
    data: npt.NDArray[Any],
    transform: Affine,
    epsg: int,
    *,
    categorical: bool,
    nodata: int = 0,
) -> None:
    """One-band COG as Earth Search and the Planetary Computer have them: DEFLATE, 256 px
    tiles, overviews (NEAREST for ``categorical`` quality bands, else AVERAGE with the
    horizontal predictor), ``nodata`` in the file's metadata."""
    options: dict[str, Any] = {"compress": "DEFLATE", "blocksize": 256}
    if categorical:
        options["overview_resampling"] = "NEAREST"
    else:
        options.update(predictor=2, overview_resampling="AVERAGE")
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs=f"EPSG:{epsg}",
        transform=transform,
        nodata=nodata,
        **options,
    ) as dst:
        dst.write(data, 1)


@dataclass(frozen=True)
class Raster:
    """One file of an item: its name (without ``.tif``), pixels, grid and kind."""

    name: str
    data: npt.NDArray[Any]
    transform: Affine
    categorical: bool = False
    nodata: int = 0


def write_item(
    pool: ThreadPoolExecutor,
    root: Path,
    rel_dir: str,
    item: dict[str, Any],
    rasters: Iterable[Raster],
    epsg: int,
    *,
    suffix: str = ".tif",
) -> list[str]:
    """Write one item's COGs (``<name><suffix>``) and its JSON into ``root/rel_dir``;
    returns their paths relative to ``root``. GDAL compresses with the GIL released: the
    files are written side by side on ``pool``."""
    folder = root / rel_dir
    folder.mkdir(parents=True, exist_ok=True)
    rasters = list(rasters)
    futures = [
        pool.submit(
            write_cog,
            folder / f"{r.name}{suffix}",
            r.data,
            r.transform,
            epsg,
            categorical=r.categorical,
            nodata=r.nodata,
        )
        for r in rasters
    ]
    for future in futures:
        future.result()
    (folder / f"{item['id']}.json").write_text(json.dumps(item, indent=1))
    return [f"{rel_dir}/{r.name}{suffix}" for r in rasters] + [f"{rel_dir}/{item['id']}.json"]


class TruthWriter:
    """The truth as a local Zarr group, fed one date at a time in time order and written in
    blocks of dates: each Zarr write costs milliseconds of overhead.

    ``arrays`` maps each variable to its (rows, columns) and dtype; every one gets a leading
    ``time`` axis of ``n_times``. ``attrs`` go on the group (times, item ids).
    """

    def __init__(
        self,
        path: Path,
        n_times: int,
        arrays: dict[str, tuple[tuple[int, int], str]],
        attrs: dict[str, Any],
    ) -> None:
        group = zarr.open_group(path, mode="w")
        group.attrs.update(attrs)
        self.group = group
        largest = max(rows * cols for (rows, cols), _ in arrays.values())
        # Dates per write and per chunk: a few MiB per chunk, the whole year at demo sizes.
        self.block = min(n_times, max(1, _TRUTH_BLOCK_BYTES // (2 * largest)))
        self.arrays: dict[str, zarr.Array[Any]] = {}
        for name, ((rows, cols), dtype) in arrays.items():
            self.arrays[name] = group.create_array(
                name,
                shape=(n_times, rows, cols),
                chunks=(self.block, min(rows, 2048), min(cols, 2048)),
                dtype=dtype,
                fill_value=0,
                dimension_names=("time", "y", "x"),
            )
        self.pending: list[dict[str, npt.NDArray[Any]]] = []
        self.written = 0

    def write_static(self, name: str, data: npt.NDArray[Any]) -> None:
        """A variable without time (the land cover), written at once."""
        self.group.create_array(name, data=data, dimension_names=("y", "x"))

    def add(self, date: dict[str, npt.NDArray[Any]]) -> None:
        """Queue the next date (one array per variable); written when a block is full or on
        :meth:`flush`."""
        self.pending.append(date)
        if len(self.pending) == self.block:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        steps = slice(self.written, self.written + len(self.pending))
        for name, array in self.arrays.items():
            array[steps] = np.stack([date[name] for date in self.pending])
        self.written += len(self.pending)
        self.pending = []


def _clear_outputs(root: Path, folders: Iterable[str]) -> None:
    """Remove what an earlier build left; the manifest first, so nothing looks complete."""
    (root / MANIFEST_NAME).unlink(missing_ok=True)
    for name in (*folders, TRUTH_NAME):
        shutil.rmtree(root / name, ignore_errors=True)


def write_manifest(
    root: Path, archive_format: int, spec: Any, items: list[str], files: list[str]
) -> None:
    """The manifest (format, spec, item and file paths), written last and renamed into
    place: its presence means the archive is complete."""
    manifest = {
        "format": archive_format,
        "spec": asdict(spec),
        "items": items,
        "files": [*files, f"{TRUTH_NAME}/zarr.json"],
    }
    partial = root / f".{MANIFEST_NAME}.partial"
    partial.write_text(json.dumps(manifest, indent=1))
    partial.replace(root / MANIFEST_NAME)


class StoredArchive:
    """Reading a built archive back; the Sentinel-2 and Landsat archives derive from it.

    A subclass is a frozen dataclass with ``root`` and ``spec`` fields and says its
    ``archive_format`` (bumped when its synthesis or layout changes) and :attr:`epsg` and
    :attr:`bounds`.
    """

    root: Path
    spec: Any
    archive_format: int = 0

    @property
    def epsg(self) -> int:
        raise NotImplementedError

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        raise NotImplementedError

    def bbox_lonlat(self) -> tuple[float, float, float, float]:
        """Area covered (west, south, east, north) in degrees, EPSG:4326."""
        to_lonlat = pyproj.Transformer.from_crs(self.epsg, 4326, always_xy=True)
        west, south, east, north = to_lonlat.transform_bounds(*self.bounds, densify_pts=21)
        return (west, south, east, north)

    def _manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST_NAME
        try:
            manifest: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DataError(
                f"no complete archive at {self.root} ({path.name} unreadable: {err}); "
                "call build_archive() to (re)build it"
            ) from err
        return manifest

    def is_complete(self) -> bool:
        """The manifest names this format and spec, and every file it lists is there."""
        try:
            manifest = self._manifest()
        except DataError:
            return False
        return (
            manifest.get("format") == self.archive_format
            and manifest.get("spec") == asdict(self.spec)
            and all((self.root / f).is_file() for f in manifest.get("files", [None]))
        )

    def stored_items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(path under ``root``, item as written, hrefs relative to its folder)."""
        for rel in self._manifest()["items"]:
            yield rel, json.loads((self.root / rel).read_text())

    def item_dicts(self, base_url: str) -> list[dict[str, Any]]:
        """STAC items with asset hrefs under ``base_url``.

        ``base_url`` is where ``root`` is served, e.g. ``"http://127.0.0.1:8123"`` or
        ``"s3://demo-bucket/archive"``; an asset href is ``base_url`` + "/" + the file's path
        under ``root``. Sorted by datetime, then id.
        """
        if not isinstance(base_url, str) or not base_url.strip("/"):
            raise InputError(
                f"base_url must name where the archive root is served, e.g. "
                f"'http://127.0.0.1:8123' or 's3://bucket/archive'; got {base_url!r}"
            )
        base = base_url.rstrip("/")
        items = []
        for rel, item in self.stored_items():
            folder = rel.rsplit("/", 1)[0]  # the item JSON sits beside its assets
            for asset in item["assets"].values():
                asset["href"] = f"{base}/{folder}/{asset['href'].removeprefix('./')}"
            items.append(item)
        return sorted(items, key=lambda it: (it["properties"]["datetime"], it["id"]))

    def write_item_collection(self, path: Path, base_url: str) -> Path:
        """Write the items as a GeoJSON FeatureCollection (for ``rustac serve``); returns path."""
        collection = {"type": "FeatureCollection", "features": self.item_dicts(base_url)}
        path = Path(path)
        path.write_text(json.dumps(collection))
        return path

    def extent(self) -> dict[str, Any]:
        """The STAC Collection ``extent`` of the items: their bbox union and time span."""
        items = [item for _, item in self.stored_items()]
        times = sorted(item["properties"]["datetime"] for item in items)
        boxes = np.array([item["bbox"] for item in items])
        bbox = [*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist()]
        return {
            "spatial": {"bbox": [bbox]},
            "temporal": {"interval": [[times[0], times[-1]]]},
        }

    def platforms(self) -> list[str]:
        """The items' platforms, sorted."""
        return sorted({item["properties"]["platform"] for _, item in self.stored_items()})


_Archive = TypeVar("_Archive", bound=StoredArchive)


def build_once(archive: _Archive, folders: Iterable[str], write: Callable[[], None]) -> _Archive:
    """``archive``, written by ``write()`` into its root unless the root already holds it
    complete (its manifest, written last, names the same spec and every file it lists is
    there). What an earlier build left (``folders``, the truth, the manifest) is removed
    first.

    Raises:
        InputError: the root exists and is not a directory.
    """
    root = archive.root
    if root.exists() and not root.is_dir():
        raise InputError(f"archive root {root} exists and is not a directory; pass a folder")
    if archive.is_complete():
        return archive
    root.mkdir(parents=True, exist_ok=True)
    _clear_outputs(root, folders)
    write()
    return archive
