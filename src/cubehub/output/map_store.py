"""Stores of per-pixel maps made from a composite (a class map and per-class probabilities),
written tile by tile with the composite stores' records.

Layout: as :mod:`cubehub.output.layout` describes, without seasons: the tiles of the source
composite in ``cubehub-store.json`` (with ``kind: "map"`` and what made the map: its
source, the model's digest, features and classes), one record per complete tile in
``cubehub-complete/map/<tile>.json``, written after all the tile's chunks. A rerun with the
same source and model skips recorded tiles (resume); a different model or source is
refused unless ``overwrite``. Readers (:meth:`MapStore.open`) hide pixels of tiles without
a record. Zarr format 2, so GDAL and QGIS open the map as they open composites.

One writer per map at a time (a prediction is one process driving a cluster).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import xarray as xr
import zarr.storage

from cubehub import __version__
from cubehub.credentials import redact
from cubehub.errors import InputError, StoreMismatchError
from cubehub.grid import SPATIAL_DIMS
from cubehub.output.completion import Completion, TileLayout, completion_mask
from cubehub.output.encoding import with_codecs
from cubehub.output.layout import COMPLETE_DIR, LAYOUT_VERSION, MARKER, quiet_zarr
from cubehub.output.storage import (
    check_no_secrets,
    check_writable,
    filesystem,
    protocol_of,
    storage_errors,
)

__all__ = ["MAP_PART", "MapStore"]

#: The record folder of a map (composites have one per season).
MAP_PART = "map"
ZARR_FORMAT = 2


class MapStore:
    """A map store; create or resume one with :meth:`open_or_create`, read with :meth:`open`."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        check_no_secrets(self.storage_options)
        self.fs, self.path = filesystem(self.url, self.storage_options)
        self.layout = TileLayout({})

    @classmethod
    def open_or_create(
        cls,
        url: str,
        template: xr.Dataset,
        layout: TileLayout,
        identity: Mapping[str, Any],
        *,
        storage_options: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> MapStore:
        """Create the map from ``template`` (lazy; metadata and coordinates are written), or
        reopen one made from the same ``identity`` and ``layout`` to resume it.

        Args:
            url: local path or fsspec URL.
            template: the full-grid dataset with its encodings (chunks on tile edges).
            layout: the source composite's tiles.
            identity: JSON-able record of what makes the map (source, model, features);
                a store made from another is refused unless ``overwrite``.
            storage_options: fsspec options without secrets.
            overwrite: replace whatever is at ``url``.

        Raises:
            StoreMismatchError: a store made otherwise exists at ``url``.
            OutputLocationError: the location cannot be written.
        """
        store = cls(url, storage_options)
        ident = json.loads(json.dumps(dict(identity), sort_keys=True, default=str))
        with storage_errors(url):
            marker = store._read_marker()
            exists = store.fs.exists(store.path) and bool(store.fs.ls(store.path))
        if exists and not overwrite:
            if marker is None or marker.get("kind") != "map":
                raise StoreMismatchError(
                    f"{redact(url)} exists and is not a cubehub map store; choose another "
                    "output, or pass overwrite to replace it"
                )
            stored_layout = TileLayout.from_json(marker.get("tiles", {}))
            if marker.get("state") == "ready":
                differences = [
                    key
                    for key in sorted(set(ident) | set(marker.get("made_from", {})))
                    if ident.get(key) != marker.get("made_from", {}).get(key)
                ]
                if dict(stored_layout.tiles) != dict(layout.tiles):
                    differences.append("tiles")
                if differences:
                    raise StoreMismatchError(
                        f"{redact(url)} holds a map made otherwise ({', '.join(differences)} "
                        "differ); choose another output, or pass overwrite to replace it"
                    )
                store.layout = stored_layout
                return store
        check_writable(url, storage_options, overwrite=True)
        with storage_errors(url):
            store._create(template, layout, ident)
        return store

    def _read_marker(self) -> dict[str, Any] | None:
        try:
            marker: dict[str, Any] = json.loads(self.fs.cat_file(f"{self.path}/{MARKER}"))
        except (FileNotFoundError, ValueError):
            return None
        return marker

    def _put(self, relative: str, data: bytes) -> None:
        target = f"{self.path}/{relative}"
        if protocol_of(self.url) == "file":
            self.fs.makedirs(os.path.dirname(target), exist_ok=True)
        self.fs.pipe_file(target, data)

    def _marker(self, state: str, layout: TileLayout, identity: Mapping[str, Any]) -> bytes:
        return json.dumps(
            {
                "cubehub_layout": LAYOUT_VERSION,
                "kind": "map",
                "state": state,
                "cubehub_version": __version__,
                "made_from": dict(identity),
                "tiles": layout.to_json(),
            }
        ).encode()

    def _create(
        self, template: xr.Dataset, layout: TileLayout, identity: Mapping[str, Any]
    ) -> None:
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)
        self._put(MARKER, self._marker("creating", layout, identity))
        ds = with_codecs(template, ZARR_FORMAT)
        with quiet_zarr():
            ds.to_zarr(
                self._zarr_store(),
                mode="a",
                zarr_format=ZARR_FORMAT,
                consolidated=True,
                compute=False,
            )
        self.layout = layout
        self._put(MARKER, self._marker("ready", layout, identity))

    def _zarr_store(self) -> Any:
        if protocol_of(self.url) == "file":
            return zarr.storage.LocalStore(self.path)
        return zarr.storage.FsspecStore.from_url(self.url, storage_options=self.storage_options)

    def completion(self) -> Completion:
        """The map's records, read now."""
        root = f"{self.path}/{COMPLETE_DIR}"
        with storage_errors(self.url):
            self.fs.invalidate_cache(root)
            try:
                return Completion.from_paths(self.fs.find(root))
            except FileNotFoundError:
                return Completion()

    def completed_tiles(self) -> set[str]:
        """Ids of the tiles recorded complete."""
        return self.completion().tiles_complete([MAP_PART], self.layout.tiles)

    def write_tile(self, ds: xr.Dataset, tile: str) -> Any:
        """A delayed write of ``ds`` (the tile's pixels, encoded as the template) into the
        tile's chunk-aligned region; compute it, then call :meth:`mark_complete`."""
        if tile not in self.layout.tiles:
            raise InputError(f"tile {tile} is not one of the map's {len(self.layout)} tiles")
        y0, y1, x0, x1 = self.layout.tiles[tile]
        data = ds.drop_vars(list(ds.coords))
        with quiet_zarr():
            return data.to_zarr(
                self._zarr_store(),
                region={"y": slice(y0, y1), "x": slice(x0, x1)},
                compute=False,
                zarr_format=ZARR_FORMAT,
                consolidated=True,
            )

    def mark_complete(self, tile: str) -> None:
        """Record ``tile`` complete; only after every chunk of it is written."""
        record = {
            "tile": tile,
            "written": datetime.now(UTC).isoformat(),
            "cubehub_version": __version__,
        }
        with storage_errors(self.url):
            self._put(f"{COMPLETE_DIR}/{MAP_PART}/{tile}.json", json.dumps(record).encode())

    def open(self, *, complete_only: bool = True) -> xr.Dataset:
        """The map, lazily, decoded, with a ``complete`` (y, x) coordinate; with
        ``complete_only`` (default) pixels of tiles not recorded complete are NaN."""
        with storage_errors(self.url):
            marker = self._read_marker()
            if marker is None or marker.get("kind") != "map":
                raise InputError(f"no cubehub map store at {redact(self.url)}; check the path")
            with quiet_zarr():
                ds = xr.open_zarr(
                    self._zarr_store(), decode_coords="all", consolidated=True, chunks={}
                )
        self.layout = TileLayout.from_json(marker.get("tiles", {}))
        first = next(v for v in ds.data_vars.values() if set(SPATIAL_DIMS) <= set(v.dims))
        chunks = first.encoding.get("preferred_chunks", {})
        shape = (ds.sizes["y"], ds.sizes["x"])
        complete = completion_mask(
            self.completion(),
            self.layout,
            [MAP_PART],
            shape,
            (chunks.get("y", shape[0]), chunks.get("x", shape[1])),
        )[0]
        ds = ds.assign_coords(complete=(SPATIAL_DIMS, complete))
        if not complete_only:
            return cast(xr.Dataset, ds)
        out = ds.copy()
        for name, var in ds.data_vars.items():
            if set(SPATIAL_DIMS) <= set(var.dims):
                out[name] = var.where(ds["complete"]).assign_attrs(var.attrs)
        return cast(xr.Dataset, out)
