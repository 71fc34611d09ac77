"""The one place that picks a store kind: :func:`open_store` for writers,
:func:`open_composite` for readers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import xarray as xr

from cubehub.errors import InputError
from cubehub.output.completion import Completion, TileLayout, with_complete
from cubehub.output.encoding import odse_layers
from cubehub.output.layout import StoreKind, TileStore
from cubehub.output.storage import check_no_secrets, filesystem, storage_errors
from cubehub.output.zarr_store import CompositeStore
from cubehub.tiles import Tile

__all__ = [
    "is_icechunk_repo",
    "open_composite",
    "open_store",
    "open_with_records",
    "store_format",
    "store_records",
]


def open_composite(
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    complete_only: bool = True,
    layout: Literal["cube", "odse"] = "cube",
    kind: Literal["auto", "zarr", "icechunk"] = "auto",
    snapshot: str | None = None,
) -> xr.Dataset:
    """Open a composite store lazily, decoded to reflectance, with its CRS.

    Args:
        url: local path or fsspec URL of a store written by cubehub.
        storage_options: fsspec options without secrets (see :mod:`cubehub.output.storage`).
        complete_only: hide (NaN) pixels of tiles not recorded complete, so a store that
            is still being written never shows fill values as data; default True. The
            ``complete`` coordinate (season, y, x) says which pixels are.
        layout: ``"cube"`` (default; dims season, percentile, y, x) or ``"odse"`` (one 2-D
            variable per layer, named ``<band>_p50_<start>..<end>``).
        kind: ``"auto"`` (default) detects an Icechunk repository; or force one.
        snapshot: Icechunk snapshot id to read (default: the tip of ``main``).

    Example:
        >>> ds = open_composite("s3://bucket/graz-2022.zarr")  # doctest: +SKIP
        >>> ds["nir"].sel(season="2022-summer", percentile=50).plot()  # doctest: +SKIP
    """
    raw, completion, tile_layout = open_with_records(
        url, storage_options, kind=kind, snapshot=snapshot
    )
    # A store without cubehub's records (written in one go, e.g. with ``to_zarr``) has no
    # tiles to hide: it is shown as stored, without a ``complete`` coordinate.
    ds = (
        with_complete(raw, completion, tile_layout, mask=complete_only)
        if tile_layout.tiles
        else raw
    )
    return odse_layers(ds) if layout == "odse" else ds


def open_with_records(
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    kind: Literal["auto", "zarr", "icechunk"] = "auto",
    snapshot: str | None = None,
    decode: bool = True,
) -> tuple[xr.Dataset, Completion, TileLayout]:
    """A store lazily, decoded, no pixel hidden; its completion records and tile layout.

    For jobs that read a store tile by tile (gap filling); arguments as
    :func:`open_composite`. ``decode=False`` keeps the stored integers and their CF
    attributes (``scale_factor``, ``add_offset``, ``_FillValue``), for exports that copy
    them exactly.
    """
    options = dict(storage_options or {})
    check_no_secrets(options)
    if kind == "icechunk" or (kind == "auto" and is_icechunk_repo(url, options)):
        from cubehub.output.icechunk_store import open_icechunk

        with storage_errors(url):
            return open_icechunk(url, options, snapshot=snapshot, decode=decode)
    return CompositeStore(url, options).open_with_records(decode=decode)


def store_records(
    url: str, storage_options: Mapping[str, Any] | None = None, *, snapshot: str | None = None
) -> tuple[Completion, TileLayout]:
    """A store's completion records and tile layout, of either kind, read now (no pixels)."""
    options = dict(storage_options or {})
    check_no_secrets(options)
    if is_icechunk_repo(url, options):
        from cubehub.output.icechunk_store import open_icechunk

        with storage_errors(url):
            _, completion, tile_layout = open_icechunk(url, options, snapshot=snapshot)
        return completion, tile_layout
    return CompositeStore(url, options).completion()


def is_icechunk_repo(url: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether ``url`` holds an Icechunk repository (it has a ``refs`` folder) rather than Zarr."""
    fs, path = filesystem(url, storage_options)
    with storage_errors(url):
        return bool(fs.exists(f"{path.rstrip('/')}/refs"))


def store_format(
    url: str, storage_options: Mapping[str, Any] | None = None
) -> tuple[StoreKind, int]:
    """The kind and Zarr format of the store at ``url``: ``("icechunk", 3)``, ``("zarr", 3)``
    or ``("zarr", 2)``, so that a store derived from it can be written the same way."""
    if is_icechunk_repo(url, storage_options):
        return "icechunk", 3
    fs, path = filesystem(url, storage_options)
    with storage_errors(url):
        return "zarr", 3 if fs.exists(f"{path.rstrip('/')}/zarr.json") else 2


def open_store(
    url: str,
    template: xr.Dataset,
    tiles: Sequence[Tile],
    *,
    storage_options: Mapping[str, Any] | None = None,
    store_kind: StoreKind = "zarr",
    zarr_format: int | None = None,
    overwrite: bool = False,
) -> TileStore:
    """Create the store of a job from ``template``, or reopen one made by the same kind of job.

    Args:
        url: local path or fsspec URL.
        template: lazy full-grid dataset (see :func:`cubehub.pipeline.template`).
        tiles: the job's tiles; their edges must fall on chunk edges.
        storage_options: fsspec options without secrets (see :mod:`cubehub.output.storage`).
        store_kind: ``"zarr"`` (default; :mod:`cubehub.output.zarr_store`) or ``"icechunk"``
            for transactional writes (:mod:`cubehub.output.icechunk_store`).
        zarr_format: 2 or 3; default (None) the kind's own: 2 for Zarr stores (GDAL and
            QGIS read it), 3 for Icechunk (its only format; 2 is refused).
        overwrite: replace whatever is at ``url`` (default False: refuse a store made by a
            different job).

    Raises:
        InputError: bad arguments.
        OutputLocationError: the location cannot be written.
        StoreMismatchError: a store exists at ``url`` with another grid, CRS, variables or
            job parameters (pass ``overwrite`` to replace it).
    """
    if store_kind == "icechunk":
        from cubehub.output.icechunk_store import IcechunkCompositeStore

        if zarr_format not in (None, 3):
            raise InputError(
                "icechunk stores are Zarr format 3; drop zarr_format: 2 or use store_kind: zarr"
            )
        return IcechunkCompositeStore.open_or_create(
            url, template, tiles, storage_options=storage_options, overwrite=overwrite
        )
    if store_kind != "zarr":
        raise InputError(f"store_kind must be 'zarr' or 'icechunk', got {store_kind!r}")
    return CompositeStore.open_or_create(
        url,
        template,
        tiles,
        storage_options=storage_options,
        zarr_format=2 if zarr_format is None else zarr_format,
        overwrite=overwrite,
    )
