"""Transactional composite stores on Icechunk: a job's writes appear all at once, or never.

An Icechunk repository is a Zarr store with version control on object storage. A job
writes into a session on branch ``main`` and commits once at :meth:`finish`: readers see the
previous snapshot until then, a writer killed before the commit leaves ``main`` unchanged
(re-running the job redoes it), and every committed job is one snapshot to go back to
(``open_composite(url, snapshot=...)``).

Distributed writes follow Icechunk's fork/merge protocol: the template goes into a fork of
the job's session; each tile's write tasks carry a copy of that fork and return their
changes; :meth:`IcechunkCompositeStore.mark_complete` merges them back as each tile ends.
Completion records (and the assets a tile was written without) live in the root group's
attributes and are committed with the data.

Storage: local paths and ``s3://`` (credentials from the environment, ``AWS_*``, never
written to the repository or the task graph), ``gs://`` (Google application credentials).
A local repository takes one writing job at a time (cubehub commits once per job); Icechunk
says so in a warning on every open, which cubehub silences unless ``ICECHUNK_LOG`` is set.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
from collections.abc import Mapping, Sequence
from typing import Any, cast

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from dask.delayed import delayed

from cubehub import __version__
from cubehub.credentials import redact
from cubehub.errors import InputError, StoreMismatchError
from cubehub.output.completion import Completion, TileLayout, with_complete
from cubehub.output.encoding import with_codecs
from cubehub.output.icechunk_storage import icechunk_module as _icechunk
from cubehub.output.icechunk_storage import icechunk_storage
from cubehub.output.layout import (
    LAYOUT_VERSION,
    TileStore,
    check_matches,
    check_template,
    full_grid_crs,
    quiet_zarr,
    region_dataset,
    season_runs,
    seasons_to_append,
)
from cubehub.output.stac_records import write_stac_records
from cubehub.output.storage import storage_errors
from cubehub.tiles import Tile

__all__ = ["IcechunkCompositeStore", "icechunk_storage", "open_icechunk", "snapshot_history"]

BRANCH = "main"
_LAYOUT_ATTR = "cubehub_store"
_COMPLETE_ATTR = "cubehub_complete"
_MISSING_ATTR = "cubehub_missing"
#: Icechunk's log filter unless ``ICECHUNK_LOG`` says otherwise: its warnings, but not the
#: one about local repositories it prints on every open (see the module docs).
_LOG_FILTER = "warn,icechunk::storage::object_store=error"


def _quiet_logs() -> None:
    """Apply :data:`_LOG_FILTER` in this process (workers import this module with the tasks)."""
    if "ICECHUNK_LOG" not in os.environ:
        with contextlib.suppress(ImportError):
            import icechunk

            icechunk.set_logs_filter(_LOG_FILTER)


_quiet_logs()


class IcechunkCompositeStore(TileStore):
    """A composite store in an Icechunk repository; one commit per job (see module docs)."""

    def __init__(
        self, url: str, storage_options: Mapping[str, Any], repo: Any, seasons: Sequence[str]
    ) -> None:
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options)
        self.repo = repo
        self.seasons = list(seasons)
        self._session = repo.writable_session(BRANCH)
        self._fork = self._session.fork()
        self._base = Completion()
        self._new = Completion()
        #: tile -> hrefs this writer recorded missing; [] clears an older record.
        self._new_missing: dict[str, list[str]] = {}
        self._layout = TileLayout({})
        self._store_seasons: list[str] = []
        self._pending: dict[str, list[str]] = {}
        self._forgotten = False  # records dropped: commit even without new chunks
        self.snapshot_id: str | None = None

    @classmethod
    def open_or_create(
        cls,
        url: str,
        template: xr.Dataset,
        tiles: Sequence[Tile],
        *,
        storage_options: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> IcechunkCompositeStore:
        """Open (or create) the repository and stage the template in the job's session.

        Nothing is visible to readers until :meth:`finish` commits.

        Raises:
            StoreMismatchError: the repository holds a store made by a different job.
        """
        ic = _icechunk()
        layout = TileLayout.from_tiles(tiles)
        check_template(template, layout)
        options = dict(storage_options or {})
        with storage_errors(url):
            repo = _open_or_create(ic, icechunk_storage(url, options))
            store = cls(url, options, repo, [str(s) for s in template["season"].values])
            existing = store._committed()
        ds = full_grid_crs(template)
        if existing is not None and not overwrite:
            if _LAYOUT_ATTR not in existing.attrs:
                raise StoreMismatchError(
                    f"{redact(url)} holds data that cubehub did not write; choose another output, or "
                    "set overwrite to replace it (its history is kept)"
                )
            old_layout = TileLayout.from_json(json.loads(existing.attrs[_LAYOUT_ATTR])["tiles"])
            new_seasons = check_matches(url, existing, ds, old_layout, layout)
            store._base = _completion_of(existing.attrs)
            store._layout = old_layout
            store._store_seasons = [str(s) for s in existing["season"].values]
            if new_seasons:
                new = seasons_to_append(ds, new_seasons, existing.attrs)
                new.to_zarr(
                    store._fork.store,
                    mode="a-",
                    append_dim="season",
                    compute=False,
                    consolidated=False,
                    zarr_format=3,
                )
                store._store_seasons += new_seasons
            return store
        ds.attrs[_LAYOUT_ATTR] = json.dumps(
            {"cubehub_layout": LAYOUT_VERSION, "tiles": layout.to_json()}
        )
        ds.attrs[_COMPLETE_ATTR] = json.dumps({})
        ds.attrs[_MISSING_ATTR] = json.dumps({})
        with_codecs(ds, 3).to_zarr(
            store._fork.store, mode="w", compute=False, consolidated=False, zarr_format=3
        )
        store._layout = layout
        store._store_seasons = list(store.seasons)
        return store

    def _committed(self) -> xr.Dataset | None:
        """The store on the tip of ``main``, raw, or None if the repository is empty."""
        session = self.repo.readonly_session(branch=BRANCH)
        try:
            raw: xr.Dataset = xr.open_zarr(
                session.store,
                consolidated=False,
                decode_coords="all",
                chunks=None,
                mask_and_scale=False,
            )
        except (FileNotFoundError, KeyError, ValueError):
            return None
        return raw

    def completed_tiles(self) -> set[str]:
        """Tiles complete in every season of the job: in the last commit (none when
        overwriting) or recorded by this writer since (committed at :meth:`finish`)."""
        return self._done().tiles_complete(self.seasons, self._layout.tiles)

    def _done(self) -> Completion:
        """The committed records and this writer's, together."""
        done = Completion({s: set(t) for s, t in self._base.done.items()}, dict(self._base.missing))
        for season, tiles in self._new.done.items():
            for tile in tiles:
                done.add(season, tile)
        for tile, hrefs in self._new_missing.items():
            if hrefs:
                done.missing[tile] = hrefs
            else:
                done.missing.pop(tile, None)
        return done

    def write_tile(self, ds: xr.Dataset, tile: Tile) -> Any:
        """A delayed write of the tile; its result (the changes) goes to :meth:`mark_complete`."""
        labels = [str(s) for s in ds["season"].values]
        todo = self._base.seasons_missing(tile.id, labels)
        self._pending[tile.id] = todo
        fork = pickle.loads(pickle.dumps(self._fork))  # a copy that includes the staged template
        sources, targets, regions = [], [], []
        with storage_errors(self.url, f"cannot write tile {tile.id} to "):
            for positions, store_slice in season_runs(todo, labels, self._store_seasons):
                part = region_dataset(ds.isel(season=positions), tile)
                for name, var in part.data_vars.items():
                    encoded = xr.conventions.encode_cf_variable(var.variable, name=name)
                    target = zarr.open_array(fork.store, path=str(name), mode="r+", zarr_format=3)
                    sources.append(encoded.data)
                    targets.append(target)
                    regions.append(
                        tuple(
                            store_slice
                            if d == "season"
                            else slice(*tile.y)
                            if d == "y"
                            else slice(*tile.x)
                            if d == "x"
                            else slice(None)
                            for d in var.dims
                        )
                    )
        if not sources:
            return delayed(_merge)(fork)
        stored = da.store(
            sources,
            cast(Any, targets),
            regions=regions,
            lock=False,
            compute=False,
            return_stored=True,
            load_stored=False,
        )
        changes = [_changeset(array) for array in stored]
        return delayed(_merge)(*changes)

    def mark_complete(self, tile: Tile, written: Any = None, missing: Sequence[str] = ()) -> None:
        """Merge the tile's changes into the job's session and record it, with the assets it
        lacks (``missing``); all committed at :meth:`finish`.

        A tile never passed to :meth:`write_tile` (one over no data) is recorded as it is.
        """
        if tile.id in self._pending:
            if not isinstance(written, _icechunk().ForkSession):
                raise InputError(
                    "an icechunk store needs the computed result of write_tile: call "
                    "store.mark_complete(tile, future.result())"
                )
            self._session.merge(written)
            seasons = self._pending.pop(tile.id)
        else:
            seasons = self.seasons
        for season in seasons:
            self._new.add(season, tile.id)
        self._new_missing[tile.id] = sorted(missing)

    def forget(self, seasons: Sequence[str]) -> None:
        """Drop the records of ``seasons`` (every tile), in the commit of :meth:`finish`."""
        for completion in (self._base, self._new):
            for season in seasons:
                completion.done.pop(season, None)
        self._forgotten = True

    def finish(self, message: str | None = None) -> None:
        """Commit the job: one new snapshot on ``main``; then update the STAC records."""
        if self.snapshot_id is not None:
            return
        self._session.merge(self._fork)
        if not (self._session.has_uncommitted_changes or self._forgotten):
            return
        done = self._done()
        root = zarr.open_group(self._session.store, mode="r+", zarr_format=3)
        root.attrs[_COMPLETE_ATTR] = json.dumps(done.to_json())
        root.attrs[_MISSING_ATTR] = json.dumps(done.missing, sort_keys=True)
        written = sorted({t for tiles in self._new.done.values() for t in tiles})
        with storage_errors(self.url):
            self.snapshot_id = self._session.commit(
                message
                or f"cubehub {__version__}: {len(written)} tile(s), seasons {', '.join(self.seasons)}",
                metadata={
                    "cubehub_version": __version__,
                    "tiles": written,
                    "seasons": self.seasons,
                },
            )
            self._write_stac(done)

    def _write_stac(self, done: Completion) -> None:
        committed = self._committed()
        if committed is None:
            return
        seasons = [str(s) for s in committed["season"].values]
        write_stac_records(
            self.url,
            committed,
            storage_options=self.storage_options,
            kind="icechunk",
            tiles_complete={s: len(done.tiles_complete([s], self._layout.tiles)) for s in seasons},
            tiles_total=len(self._layout),
        )

    def open(self, *, complete_only: bool = True) -> xr.Dataset:
        """The committed store (tip of ``main``), lazily, decoded."""
        with storage_errors(self.url):
            ds, completion, layout = open_icechunk(self.url, self.storage_options)
        return with_complete(ds, completion, layout, mask=complete_only)


def _changeset(stored: da.Array) -> Any:
    """Tree-reduce the sessions of one stored array's write tasks into one fork (lazy)."""
    from icechunk.distributed import extract_session, merge_sessions

    def chunk(z: Any, axis: Any = None, keepdims: Any = None, computing_meta: bool = False) -> Any:
        return np.array([object()], dtype=object) if computing_meta else extract_session(z)

    def aggregate(
        *s: Any, axis: Any = None, keepdims: Any = None, computing_meta: bool = False
    ) -> Any:
        return np.array([object()], dtype=object) if computing_meta else merge_sessions(*s)

    return da.reduction(
        stored,
        chunk=chunk,
        aggregate=aggregate,
        concatenate=False,
        keepdims=False,
        dtype=object,
        name="cubehub-ice-changeset",
        meta=np.array([object()], dtype=object),
    )


def _merge(*sessions: Any) -> Any:
    from icechunk.distributed import merge_sessions

    return merge_sessions(*[s.item() if isinstance(s, np.ndarray) else s for s in sessions])


def _completion_of(attrs: Mapping[str, Any]) -> Completion:
    raw = json.loads(attrs.get(_COMPLETE_ATTR, "{}"))
    missing = json.loads(attrs.get(_MISSING_ATTR, "{}"))
    return Completion({s: set(t) for s, t in raw.items()}, {t: list(h) for t, h in missing.items()})


def _open_or_create(ic: Any, storage: Any) -> Any:
    """Open the repository, or create it; a writer that loses a race to create it (Icechunk
    creates with conditional writes) opens the winner's."""
    try:
        return ic.Repository.open_or_create(storage)
    except Exception:
        if not ic.Repository.exists(storage):
            raise
        return ic.Repository.open(storage)


def open_icechunk(
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    snapshot: str | None = None,
    decode: bool = True,
) -> tuple[xr.Dataset, Completion, TileLayout]:
    """The store in the repository at ``url`` (tip of ``main`` or ``snapshot``), its records and tiles.

    ``decode=False`` keeps the stored integers and their CF attributes.
    """
    ic = _icechunk()
    repo = ic.Repository.open(icechunk_storage(url, storage_options))
    session = (
        repo.readonly_session(snapshot_id=snapshot)
        if snapshot
        else repo.readonly_session(branch=BRANCH)
    )
    try:
        with quiet_zarr():
            ds = xr.open_zarr(
                session.store, consolidated=False, decode_coords="all", mask_and_scale=decode
            )
    except FileNotFoundError:  # zarr's GroupNotFoundError: nothing committed yet
        raise InputError(
            f"{redact(url)} is an Icechunk repository without a committed composite: a job writing "
            "it commits when it finishes, and none has yet; run the job to its end, or choose "
            "another store"
        ) from None
    layout = TileLayout.from_json(json.loads(ds.attrs.get(_LAYOUT_ATTR, "{}")).get("tiles", {}))
    return ds, _completion_of(ds.attrs), layout


def snapshot_history(
    url: str, storage_options: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The snapshots of ``main``, newest first: id, time, message, metadata."""
    ic = _icechunk()
    repo = ic.Repository.open(icechunk_storage(url, storage_options))
    return [
        {
            "id": s.id,
            "written_at": s.written_at.isoformat(),
            "message": s.message,
            "metadata": dict(s.metadata),
        }
        for s in repo.ancestry(branch=BRANCH)
    ]
