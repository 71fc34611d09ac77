"""The Zarr store kind: composites -> Zarr at any fsspec URL, written tile by tile, safely.

Writing protocol (:class:`CompositeStore`): the template (all tiles, all seasons; metadata
only) is created first; each tile is written as regions aligned with chunks; a tile's
record is written only after all its chunks are. Re-running a job skips tiles already
complete; several processes may write disjoint tiles of one store at once; readers hide
pixels of tiles without a record. Creating a store and appending seasons change its
metadata: one writer at a time does those, then any number write tiles. A writer claims
the creation by creating the store's marker only if it does not exist (``If-None-Match``
on object stores, an exclusive create on local disks), so of writers that start at once
exactly one creates the store and the others wait for it and reopen it. The layout is in
:mod:`cubehub.output.layout`, the encoding in :mod:`cubehub.output.encoding`.

Zarr format 2 by default, so that GIS software opens a store as it is: GDAL's Zarr driver
(3.10, the one in the lock, and QGIS through it) reads format 2 with its CRS (the CF
``spatial_ref``), geotransform (from the ``x``/``y`` coordinates), nodata (``_FillValue``) and
scale/offset, but cannot open format 3 (it lacks the ``bytes`` codec). Format 3 on request,
for readers that want it; Icechunk repositories are always format 3.

Why it is long: :class:`CompositeStore` is one protocol over one store's objects (claim,
create, reopen, append seasons, write, record, forget, read); its parts share the store's
state, and the pieces that need none of it already live in :mod:`~cubehub.output.layout`,
:mod:`~cubehub.output.zarr_objects` and :mod:`~cubehub.output.completion`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr.abc.store
import zarr.storage
from dask.delayed import delayed

from cubehub import __version__
from cubehub.credentials import redact
from cubehub.errors import InputError, OutputLocationError, StoreMismatchError
from cubehub.output.completion import Completion, TileLayout, with_complete
from cubehub.output.encoding import with_codecs
from cubehub.output.layout import (
    COMPLETE_DIR,
    MARKER,
    MISSING_DIR,
    TileStore,
    check_matches,
    check_template,
    full_grid_crs,
    quiet_zarr,
    region_dataset,
    season_runs,
    seasons_to_append,
)
from cubehub.output.stac_records import remove_stac_records, write_stac_records
from cubehub.output.storage import (
    check_no_secrets,
    check_writable,
    filesystem,
    protocol_of,
    storage_errors,
)
from cubehub.output.zarr_objects import PARTIAL, Marker, NamedWrites, put_object
from cubehub.tiles import Tile

__all__ = ["CompositeStore"]


class CompositeStore(TileStore):
    """A composite Zarr store written tile by tile, with a completion record per tile and season.

    Get one with :func:`cubehub.output.open.open_store` (writers) or
    :func:`cubehub.output.open.open_composite` (readers).
    """

    def __init__(
        self,
        url: str,
        storage_options: Mapping[str, Any] | None = None,
        *,
        seasons: Sequence[str] | None = None,
        zarr_format: int = 2,
    ) -> None:
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        check_no_secrets(self.storage_options)
        self.fs, self.path = filesystem(self.url, self.storage_options)
        self.seasons = list(seasons or [])
        self.zarr_format = zarr_format
        self._completion: Completion | None = None
        self._pending: dict[str, list[str]] = {}
        self._store_seasons: list[str] = []
        self._layout: TileLayout | None = None
        self._zstore: Any = None

    # -- creating and reopening ------------------------------------------------------------

    @classmethod
    def open_or_create(
        cls,
        url: str,
        template: xr.Dataset,
        tiles: Sequence[Tile],
        *,
        storage_options: Mapping[str, Any] | None = None,
        zarr_format: int = 2,
        overwrite: bool = False,
        wait_s: float = 60.0,
    ) -> CompositeStore:
        """Create the store from ``template``, or reopen one made by the same kind of job.

        Reopening resumes it; seasons of ``template`` that the store lacks and that all
        follow its last season are appended (no existing chunk is rewritten).

        Args:
            url: local path or fsspec URL.
            template: lazy full-grid dataset (see :func:`cubehub.pipeline.template`).
            tiles: the job's tiles; their edges must fall on chunk edges.
            storage_options: fsspec options without secrets (see :mod:`cubehub.output.storage`).
            zarr_format: 2 (default; GIS-readable) or 3.
            overwrite: replace whatever is at ``url`` (default False: refuse a store made
                by a different job).
            wait_s: how long to wait for another writer that is creating the same store.

        Raises:
            InputError: bad arguments.
            OutputLocationError: the location cannot be written.
            StoreMismatchError: a store exists at ``url`` with another grid, CRS, variables
                or job parameters (pass ``overwrite`` to replace it).
        """
        if zarr_format not in (2, 3):
            raise InputError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
        layout = TileLayout.from_tiles(tiles)
        check_template(template, layout)
        seasons = [str(s) for s in template["season"].values]
        store = cls(url, storage_options, seasons=seasons, zarr_format=zarr_format)
        replace_existing = overwrite
        while True:
            with storage_errors(url):
                marker, exists = store._wait_for_creation(wait_s)
                if exists and not replace_existing:
                    if marker is None:
                        raise StoreMismatchError(
                            f"{redact(url)} exists and is not a cubehub store (no {MARKER}); "
                            "choose another output, or set overwrite to replace it"
                        )
                    if not marker.abandoned():
                        store._reopen(template, marker, layout)
                        return store
            check_writable(url, storage_options, overwrite=True)
            with storage_errors(url):
                if exists:
                    store._remove()
                if store._claim(layout):
                    store._create(template, layout)
                    return store
            # Another writer claimed the creation first: wait for it, then reopen its store.
            replace_existing = False

    def _wait_for_creation(self, wait_s: float) -> tuple[Marker | None, bool]:
        """(marker, whether anything exists at the URL), after waiting out a creation in progress."""
        deadline = time.monotonic() + wait_s
        while True:
            self.fs.invalidate_cache()
            # An empty folder is free, and so is one holding only a claim being written.
            exists = self.fs.exists(self.path) and any(
                not str(name).endswith(PARTIAL) for name in self.fs.ls(self.path, detail=False)
            )
            marker = self._read_marker() if exists else None
            if marker is None or marker.state == "ready" or marker.abandoned():
                return marker, exists
            if time.monotonic() > deadline:
                raise OutputLocationError(
                    f"{redact(self.url)} is being created by process {marker.pid} on {marker.host} "
                    f"since {datetime.fromtimestamp(marker.time, UTC):%Y-%m-%d %H:%M:%S} UTC; wait for "
                    "it, or set overwrite if that writer is gone"
                )
            time.sleep(0.5)

    def _read_marker(self) -> Marker | None:
        try:
            raw = self.fs.cat_file(f"{self.path}/{MARKER}")
        except FileNotFoundError:
            return None
        marker = Marker.from_json(raw)
        if marker is None:  # torn: a creation interrupted while writing it
            return Marker("creating", TileLayout({}), "", 0, 0.0)
        return marker

    def _put(self, relative: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write one object of the store (see :func:`~cubehub.output.zarr_objects.put_object`)."""
        return put_object(self.fs, f"{self.path}/{relative}", data, exclusive=exclusive)

    def _remove(self) -> None:
        """Delete the store (overwrite, or a creation abandoned by its writer)."""
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)
        self.fs.invalidate_cache()

    def _claim(self, layout: TileLayout) -> bool:
        """Create the "creating" marker if no writer has: whether this writer creates the store."""
        return self._put(MARKER, Marker.now("creating", layout).to_json(), exclusive=True)

    def _create(self, template: xr.Dataset, layout: TileLayout) -> None:
        """Write the template into a store this writer has claimed (see :meth:`_claim`)."""
        remove_stac_records(self.url, self.storage_options)
        ds = with_codecs(full_grid_crs(template), self.zarr_format)
        with quiet_zarr():
            # compute=False writes metadata and coordinates only: no data chunk exists yet.
            # Mode "a", not "w-": the folder already holds the "creating" marker.
            ds.to_zarr(
                self._zarr_store(),
                mode="a",
                zarr_format=self.zarr_format,
                consolidated=True,
                compute=False,
            )
        self._layout = layout
        self._store_seasons = list(self.seasons)
        self._completion = Completion()
        self._write_stac()
        self._put(MARKER, Marker.now("ready", layout).to_json())

    def _reopen(self, template: xr.Dataset, marker: Marker, layout: TileLayout) -> None:
        existing = self._open_raw()
        self.zarr_format = _zarr_format_of(self.fs, self.path)
        new_seasons = check_matches(self.url, existing, template, marker.layout, layout)
        self._layout = marker.layout
        self._store_seasons = [str(s) for s in existing["season"].values]
        if new_seasons:
            self._append_seasons(template, new_seasons, existing)

    def _append_seasons(
        self, template: xr.Dataset, new_seasons: list[str], existing: xr.Dataset
    ) -> None:
        """Extend the season dimension: metadata and new coordinate values only."""
        new = seasons_to_append(full_grid_crs(template), new_seasons, existing.attrs)
        with quiet_zarr():
            new.to_zarr(
                self._zarr_store(),
                mode="a-",
                append_dim="season",
                compute=False,
                consolidated=True,
                zarr_format=self.zarr_format,
            )
        self._store_seasons += new_seasons
        self._write_stac()

    # -- writing ---------------------------------------------------------------------------

    def completed_tiles(self) -> set[str]:
        """Ids of the tiles recorded complete in every season of the job (fresh listing)."""
        self._completion = self._read_completion()
        layout = self._layout or self._read_marker_layout()
        return self._completion.tiles_complete(self.seasons or self._store_seasons, layout.tiles)

    def _read_completion(self) -> Completion:
        root = f"{self.path}/{COMPLETE_DIR}"
        self.fs.invalidate_cache(root)
        try:
            completion = Completion.from_paths(self.fs.find(root))
        except FileNotFoundError:
            completion = Completion()
        completion.missing = self._read_missing()
        return completion

    def _read_missing(self) -> dict[str, list[str]]:
        """The missing-asset records: tile -> hrefs (few: read one by one)."""
        root = f"{self.path}/{MISSING_DIR}"
        self.fs.invalidate_cache(root)
        try:
            paths = self.fs.find(root)
        except FileNotFoundError:
            return {}
        out: dict[str, list[str]] = {}
        for path in paths:
            with suppress(FileNotFoundError):  # removed by a writer that rewrote its tile
                record = json.loads(self.fs.cat_file(path))
                out[str(record["tile"])] = [str(h) for h in record["missing_assets"]]
        return out

    def _read_marker_layout(self) -> TileLayout:
        marker = self._read_marker()
        return marker.layout if marker else TileLayout({})

    def write_tile(self, ds: xr.Dataset, tile: Tile) -> Any:
        """A delayed write of the tile's seasons not yet complete, as chunk-aligned regions.

        Raises:
            InputError: the tile's edges or ``ds``'s chunks do not fall on the store's chunk
                edges (a misaligned region write could corrupt a neighbour's chunk).
            OutputLocationError: the store cannot be read to plan the writes.
        """
        with storage_errors(self.url, f"cannot write tile {tile.id} to "):
            if self._completion is None:
                self._completion = self._read_completion()
            if not self._store_seasons:
                self._store_seasons = [str(s) for s in self._open_raw()["season"].values]
            labels = [str(s) for s in ds["season"].values]
            todo = self._completion.seasons_missing(tile.id, labels)
            self._pending[tile.id] = todo
            writes = []
            for positions, store_slice in season_runs(todo, labels, self._store_seasons):
                part = region_dataset(ds.isel(season=positions), tile)
                region = {"season": store_slice, "y": slice(*tile.y), "x": slice(*tile.x)}
                with quiet_zarr():
                    writes.append(
                        part.to_zarr(
                            self._zarr_store(),
                            region=region,
                            compute=False,
                            zarr_format=self.zarr_format,
                            consolidated=True,
                        )
                    )
        return delayed(_written)(tile.id, todo, writes)

    def mark_complete(self, tile: Tile, written: Any = None, missing: Sequence[str] = ()) -> None:
        """Write the tile's records, one per season written; after all its chunks are.

        With ``missing``, the tile's missing-asset record is written first, so a tile with
        season records is never taken as complete while it lacks assets; without, an old
        missing-asset record is removed last.
        """
        seasons = self._pending.pop(tile.id, None)
        if seasons is None:
            seasons = self.seasons or self._store_seasons
        stamp = datetime.now(UTC).isoformat()
        missing_record = f"{MISSING_DIR}/{tile.id}.json"
        with storage_errors(self.url, f"cannot record tile {tile.id} in "):
            if missing:
                self._put(
                    missing_record,
                    json.dumps(
                        {"tile": tile.id, "missing_assets": sorted(missing), "written": stamp}
                    ).encode(),
                )
            for season in seasons:
                record = {
                    "tile": tile.id,
                    "season": season,
                    "y": list(tile.y),
                    "x": list(tile.x),
                    "written": stamp,
                    "cubehub_version": __version__,
                }
                self._put(f"{COMPLETE_DIR}/{season}/{tile.id}.json", json.dumps(record).encode())
                if self._completion is not None:
                    self._completion.add(season, tile.id)
            if not missing and self._completion is not None and tile.id in self._completion.missing:
                with suppress(FileNotFoundError):
                    self.fs.rm_file(f"{self.path}/{missing_record}")
                del self._completion.missing[tile.id]
            elif missing and self._completion is not None:
                self._completion.missing[tile.id] = sorted(missing)

    def forget(self, seasons: Sequence[str]) -> None:
        """Delete the records of ``seasons`` (every tile); their chunks stay until rewritten."""
        with storage_errors(self.url):
            for season in seasons:
                folder = f"{self.path}/{COMPLETE_DIR}/{season}"
                if self.fs.exists(folder):
                    self.fs.rm(folder, recursive=True)
            self.fs.invalidate_cache(f"{self.path}/{COMPLETE_DIR}")
        self._completion = self._read_completion()

    def finish(self, message: str | None = None) -> None:
        """Refresh the STAC records (they say how many tiles are complete)."""
        with storage_errors(self.url):
            self._completion = self._read_completion()
            self._write_stac()

    # -- reading ---------------------------------------------------------------------------

    def open(self, *, complete_only: bool = True) -> xr.Dataset:
        """The store, lazily, decoded (see :func:`cubehub.output.open.open_composite`).

        A store without cubehub's records (written in one go, e.g. with ``to_zarr``) is not
        written tile by tile: it is returned as stored, without a ``complete`` coordinate.
        """
        ds, completion, layout = self.open_with_records()
        return with_complete(ds, completion, layout, mask=complete_only) if layout.tiles else ds

    def open_with_records(
        self, *, decode: bool = True
    ) -> tuple[xr.Dataset, Completion, TileLayout]:
        """The store, lazily, decoded (or with ``decode=False`` its stored integers), nothing
        hidden; its records and tiles, read now (none for a store without cubehub's records)."""
        with storage_errors(self.url):
            if not self.fs.exists(self.path):
                raise InputError(
                    f"no store at {redact(self.url)}; check the path (and endpoint_url for s3://)"
                )
            try:
                with quiet_zarr():
                    ds: xr.Dataset = xr.open_zarr(
                        self.url,
                        storage_options=self.storage_options or None,
                        decode_coords="all",
                        mask_and_scale=decode,
                    )
            except FileNotFoundError:  # zarr's GroupNotFoundError: no Zarr metadata there
                raise InputError(
                    f"{redact(self.url)} is not a Zarr store (it has no Zarr group metadata); "
                    "give the path of a composite store written by cubehub"
                ) from None
            return ds, self._read_completion(), self._read_marker_layout()

    def has_records(self) -> bool:
        """Whether cubehub wrote this store tile by tile (it has the layout marker)."""
        return bool(self.fs.exists(f"{self.path}/{MARKER}"))

    def _zarr_store(self) -> Any:
        """The Zarr store object every write of this store goes through.

        One for the store's life rather than one per region write: each would open its own
        object-store session (slow, and noisy when they are garbage-collected on another
        event loop). It pickles into the task graph as its URL and non-secret options.
        """
        if self._zstore is None:
            if protocol_of(self.url) == "file":
                inner: zarr.abc.store.Store = zarr.storage.LocalStore(self.path)
            else:
                inner = zarr.storage.FsspecStore.from_url(
                    self.url, storage_options=self.storage_options
                )
            self._zstore = NamedWrites(inner, self.url)
        return self._zstore

    def _open_raw(self) -> xr.Dataset:
        with quiet_zarr():
            raw: xr.Dataset = xr.open_zarr(
                self._zarr_store(), decode_coords="all", chunks=None, mask_and_scale=False
            )
        return raw

    def completion(self) -> tuple[Completion, TileLayout]:
        """The store's records and tile layout, read now."""
        with storage_errors(self.url):
            return self._read_completion(), self._read_marker_layout()

    def _write_stac(self) -> None:
        layout = self._layout or self._read_marker_layout()
        completion = self._completion or self._read_completion()
        write_stac_records(
            self.url,
            self._open_raw(),
            storage_options=self.storage_options,
            kind="zarr",
            zarr_format=self.zarr_format,
            tiles_complete={
                s: len(completion.tiles_complete([s], layout.tiles)) for s in self._store_seasons
            },
            tiles_total=len(layout),
        )


def _written(tile_id: str, seasons: list[str], _writes: list[Any]) -> dict[str, Any]:
    return {"tile": tile_id, "seasons": seasons}


def _zarr_format_of(fs: Any, path: str) -> int:
    return 3 if fs.exists(f"{path}/zarr.json") else 2
