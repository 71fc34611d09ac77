"""The layout rules both store kinds share: what a store holds besides its arrays, how a
template and a job must match a store, and how tiles map onto chunk-aligned regions.

Layout of a store (``<url>/``)::

    zarr.json (or .zgroup/.zmetadata)    Zarr metadata, consolidated
    <variable>/...                       chunks
    cubehub-store.json                   tile layout and state ("creating" -> "ready")
    cubehub-complete/<season>/<tile>.json   one record per complete tile and season
    cubehub-missing/<tile>.json          the assets a tile was written without (rewritten next run)
    <url>.stac/collection.json, item.json   STAC records beside the store

(An Icechunk repository keeps the tile layout and the records in its root group's
attributes instead, committed with the data.) :class:`TileStore` is the protocol the
pipeline drives; :mod:`cubehub.output.zarr_store` and :mod:`cubehub.output.icechunk_store`
implement it.
"""

from __future__ import annotations

import json
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import xarray as xr
from pyproj import CRS

from cubehub.credentials import redact
from cubehub.errors import InputError, StoreMismatchError
from cubehub.grid import SPATIAL_DIMS
from cubehub.output.completion import TileLayout
from cubehub.output.encoding import merged_provenance
from cubehub.tiles import Tile

__all__ = [
    "COMPLETE_DIR",
    "LAYOUT_VERSION",
    "MARKER",
    "MISSING_DIR",
    "VALUE_PARAMS",
    "StoreKind",
    "TileStore",
    "check_matches",
    "check_template",
    "full_grid_crs",
    "quiet_zarr",
    "region_dataset",
    "season_runs",
    "seasons_to_append",
]

StoreKind = Literal["zarr", "icechunk"]
MARKER = "cubehub-store.json"
COMPLETE_DIR = "cubehub-complete"
MISSING_DIR = "cubehub-missing"
#: Version of the layout above; bump when it changes incompatibly.
LAYOUT_VERSION = 1
#: Job parameters that change the values of a store: a job may resume or extend a store
#: only if these equal the store's.
VALUE_PARAMS = (
    "collection",
    "calendar",
    "method",
    "min_count",
    "index_mode",
    "mask",
    "max_cloud_cover",
    "harmonize",
)


class TileStore(ABC):
    """What the pipeline drives: a composite store written tile by tile.

    Protocol: ``completed_tiles()`` -> for each other tile ``write_tile(ds, tile)`` (a
    delayed; compute it on the cluster) -> ``mark_complete(tile, result, missing)`` as soon
    as that tile's computation is done -> ``finish()``; ``forget(seasons)`` before writing
    makes seasons to redo.
    """

    url: str
    #: The snapshot a transactional store committed in :meth:`finish` (None: not one).
    snapshot_id: str | None = None

    @abstractmethod
    def completed_tiles(self) -> set[str]:
        """Ids of the tiles complete in every season of the job, those this writer recorded
        included."""

    @abstractmethod
    def write_tile(self, ds: xr.Dataset, tile: Tile) -> Any:
        """A delayed write of ``tile``'s seasons not yet complete; compute it, then
        pass its result to :meth:`mark_complete`."""

    @abstractmethod
    def mark_complete(self, tile: Tile, written: Any = None, missing: Sequence[str] = ()) -> None:
        """Record that every chunk of ``tile`` is written (``written``: the computed
        result of :meth:`write_tile`; needed by transactional stores). ``missing``: hrefs of
        assets that could not be read and counted as nodata; such a tile is recorded with
        them, shown to readers, and written again by the next run (see
        :class:`~cubehub.output.completion.Completion`)."""

    @abstractmethod
    def forget(self, seasons: Sequence[str]) -> None:
        """Drop the records of ``seasons`` in every tile, so that their tiles are written
        again (a derived store whose inputs changed); readers hide them until then.
        Transactional stores drop them at :meth:`finish`."""

    @abstractmethod
    def finish(self, message: str | None = None) -> None:
        """End the job: make the writes visible (transactional stores commit) and update
        the STAC records. Safe to call more than once."""

    @abstractmethod
    def open(self, *, complete_only: bool = True) -> xr.Dataset:
        """The store, lazily, decoded."""


def season_runs(
    todo: Sequence[str], labels: Sequence[str], store_seasons: Sequence[str]
) -> Iterator[tuple[list[int], slice]]:
    """Group ``todo`` seasons into runs contiguous in the store: (positions in ds, store slice)."""
    index = {s: i for i, s in enumerate(store_seasons)}
    run: list[int] = []
    for pos in sorted((labels.index(s) for s in todo), key=lambda p: index[labels[p]]):
        if run and index[labels[pos]] != index[labels[run[-1]]] + 1:
            yield run, slice(index[labels[run[0]]], index[labels[run[-1]]] + 1)
            run = []
        run.append(pos)
    if run:
        yield run, slice(index[labels[run[0]]], index[labels[run[-1]]] + 1)


def region_dataset(ds: xr.Dataset, tile: Tile) -> xr.Dataset:
    """The variables of a region write: data only, after checking chunk alignment."""
    for name, var in ds.data_vars.items():
        chunks = var.encoding.get("chunks")
        if chunks is None or var.chunks is None:
            continue
        for dim, zchunk, dchunks in zip(var.dims, chunks, var.chunks, strict=True):
            if dim not in SPATIAL_DIMS:
                continue
            start = tile.y[0] if dim == "y" else tile.x[0]
            edges = start + np.cumsum((0, *dchunks[:-1]))
            if start % zchunk or np.any(edges % zchunk):
                raise InputError(
                    f"tile {tile.id}: {name}'s {dim} chunks start at pixels {edges.tolist()}, not on "
                    f"the store's {zchunk}-pixel chunk edges; tile_size must be a multiple of chunk_size"
                )
    data = ds.drop_vars([c for c in ds.coords])
    return data


def full_grid_crs(template: xr.Dataset) -> xr.Dataset:
    """The template with ``spatial_ref`` describing the whole grid (it came from one tile),
    and its coordinates in memory."""
    if "spatial_ref" not in template.coords:
        raise InputError(
            "the template has no CRS; set one with ds.rio.write_crs(epsg) before writing"
        )
    # Coordinates are small; loaded, so that to_zarr(compute=False) writes them now.
    loaded = template.assign_coords({name: template[name].compute() for name in template.coords})
    out: xr.Dataset = loaded.rio.write_transform(loaded.rio.transform(recalc=True))
    for var in out.data_vars.values():
        var.encoding["grid_mapping"] = "spatial_ref"
        # Named as a coordinate too: xarray reads ``grid_mapping`` only with
        # decode_coords="all", so a plain xr.open_zarr would list spatial_ref as data.
        var.encoding["coordinates"] = " ".join(
            str(name)
            for name in out.coords
            if name not in out.dims and set(out[name].dims) <= set(var.dims)
        )
    return out


def check_template(template: xr.Dataset, layout: TileLayout) -> None:
    """Raise :class:`InputError` if ``template`` cannot become a store tiled by ``layout``."""
    for dim in ("season", "percentile", *SPATIAL_DIMS):
        if dim not in template.dims:
            raise InputError(
                f"a composite template needs a {dim!r} dimension; got dims {dict(template.sizes)}"
            )
    rows, cols = template.sizes["y"], template.sizes["x"]
    for name, var in template.data_vars.items():
        chunks = var.encoding.get("chunks")
        if not chunks:
            raise InputError(
                f"variable {name} has no chunk encoding; build the template with encode_composite"
            )
        sizes = dict(zip(var.dims, chunks, strict=True))
        for tid, (y0, y1, x0, x1) in layout.tiles.items():
            if (
                y0 % sizes["y"]
                or x0 % sizes["x"]
                or (y1 % sizes["y"] and y1 != rows)
                or (x1 % sizes["x"] and x1 != cols)
            ):
                raise InputError(
                    f"tile {tid} ({y0}:{y1}, {x0}:{x1}) does not fall on {name}'s chunk edges "
                    f"({sizes['y']} x {sizes['x']} px); make tile_size a multiple of chunk_size"
                )


def check_matches(
    url: str, existing: xr.Dataset, template: xr.Dataset, layout: TileLayout, job_layout: TileLayout
) -> list[str]:
    """Seasons of ``template`` to append to ``existing``; raise if the two differ otherwise.

    Raises:
        StoreMismatchError: naming every difference (grid, CRS, variables, percentiles,
            chunks, tiles, encoding, job parameters, seasons that cannot be appended).
    """
    problems: list[str] = []
    old_vars, new_vars = {str(v) for v in existing.data_vars}, {str(v) for v in template.data_vars}
    if old_vars != new_vars:
        problems.append(f"variables {sorted(old_vars)} != the job's {sorted(new_vars)}")
    for dim in ("x", "y", "percentile"):
        old, new = existing[dim].values, template[dim].values
        if old.shape != new.shape or not np.array_equal(old, new):
            what = "grid" if dim in SPATIAL_DIMS else "percentiles"
            problems.append(
                f"the {what} differs ({dim}: {_describe_axis(old)} != the job's {_describe_axis(new)})"
            )
    old_crs, new_crs = _crs_of(existing), _crs_of(template)
    if old_crs is None or new_crs is None or old_crs != new_crs:
        problems.append(f"the CRS differs ({_crs_name(old_crs)} != the job's {_crs_name(new_crs)})")
    for name in sorted(old_vars & new_vars):
        old_chunks = existing[name].encoding.get("chunks")
        new_chunks = template[name].encoding.get("chunks")
        if old_chunks and new_chunks and tuple(old_chunks) != tuple(new_chunks):
            problems.append(f"{name} chunks {tuple(old_chunks)} != the job's {tuple(new_chunks)}")
        problems += _encoding_differences(name, existing[name], template[name].encoding)
    if dict(layout.tiles) != dict(job_layout.tiles):
        problems.append(
            f"the tiles differ ({len(layout)} tiles in the store, {len(job_layout)} in the job; same tile_size?)"
        )
    problems += _job_param_differences(existing.attrs, template.attrs)
    new_seasons: list[str] = []
    old_labels = [str(s) for s in existing["season"].values]
    for k, label in enumerate(str(s) for s in template["season"].values):
        if label in old_labels:
            i = old_labels.index(label)
            for coord in ("season_start", "season_end"):
                if existing[coord].values[i] != template[coord].values[k]:
                    problems.append(f"season {label} has other dates in the store ({coord})")
        else:
            new_seasons.append(label)
    if new_seasons:
        last_end = existing["season_end"].values.max()
        early = [
            s for s in new_seasons if template["season_start"].sel(season=s).values <= last_end
        ]
        if early:
            problems.append(
                f"season(s) {', '.join(early)} are not in the store and do not follow its last season "
                f"({old_labels[-1]}); only later seasons can be appended"
            )
    if problems:
        raise StoreMismatchError(
            f"{redact(url)} holds a store made by a different job: {'; '.join(problems)}. Choose "
            "another output, or set overwrite to replace it"
        )
    return new_seasons


def _encoding_differences(
    name: str, stored: xr.DataArray, encoding: Mapping[str, Any]
) -> list[str]:
    """Differences between a raw (undecoded) stored variable and the job's encoding."""
    problems = []
    if "dtype" in encoding and np.dtype(stored.dtype) != np.dtype(encoding["dtype"]):
        problems.append(
            f"{name} is stored as {stored.dtype}, the job writes {np.dtype(encoding['dtype'])}"
        )
    for key, default in (("scale_factor", 1.0), ("add_offset", 0.0)):
        old, new = float(stored.attrs.get(key, default)), float(encoding.get(key, default))
        if not np.isclose(old, new, rtol=1e-9, atol=0):
            problems.append(f"{name} {key} is {old:g} in the store, {new:g} in the job")
    return problems


def _job_param_differences(old_attrs: Mapping[str, Any], new_attrs: Mapping[str, Any]) -> list[str]:
    try:
        old = json.loads(old_attrs["cubehub_job"])
        new = json.loads(new_attrs["cubehub_job"])
    except (KeyError, ValueError, TypeError):
        return []
    return [
        f"job parameter {key} is {old.get(key)!r} in the store, {new.get(key)!r} in the job"
        for key in VALUE_PARAMS
        if old.get(key) != new.get(key)
    ]


def _describe_axis(values: np.ndarray) -> str:
    if values.size == 0:
        return "empty"
    if values.size == 1 or values.dtype.kind not in "fi":
        return f"{values.size} values"
    return f"{values.size} values {values[0]:g}..{values[-1]:g}"


def _crs_of(ds: xr.Dataset) -> CRS | None:
    for name in ("spatial_ref",):
        if name in ds.variables and "crs_wkt" in ds[name].attrs:
            return CRS.from_wkt(ds[name].attrs["crs_wkt"])
    return None


def _crs_name(crs: CRS | None) -> str:
    if crs is None:
        return "none"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


@contextmanager
def quiet_zarr() -> Iterator[None]:
    """Silence two zarr notices about what cubehub does on purpose.

    Consolidated metadata is not in the format 3 spec, but one read gives a reader every
    array's metadata, which matters on object storage; readers that ignore it still read
    the store. Zarr also notes objects that are not Zarr nodes when it lists the store for
    consolidation: cubehub's records, which live in the store so that they travel with it.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        # cubehub's own records (MARKER, COMPLETE_DIR, MISSING_DIR) are objects beside the Zarr nodes.
        warnings.filterwarnings("ignore", message="Object at cubehub-")
        yield


def seasons_to_append(
    template: xr.Dataset, new_seasons: Sequence[str], existing_attrs: Mapping[str, Any]
) -> xr.Dataset:
    """What appending ``new_seasons`` to a store writes, from its full-grid ``template``
    (see :func:`full_grid_crs`): the new seasons' coordinates, the variables with their
    chunking only (the stored arrays keep their dtype, fill value, scale and codecs), and
    the provenance of both jobs. Write it with ``mode="a-", append_dim="season"``."""
    new = template.sel(season=list(new_seasons))
    new = new.drop_vars([c for c in new.coords if "season" not in new[c].dims])
    for var in new.data_vars.values():
        var.encoding = {k: v for k, v in var.encoding.items() if k == "chunks"}
    new.attrs = merged_provenance(existing_attrs, template.attrs)
    return new
