"""Gap filling of a composite store into a cloud-free store, tile by tile on a cluster.

:func:`fill_store` reads a composite store (Zarr or Icechunk) and writes the gap-filled
composites (:func:`cubehub.gapfill.gap_fill`) with their ``<variable>_fill_source`` layers
to a second store of the same kind, grid, chunks and encoding: the observed composites are
never touched, and the filled store is written, recorded and resumed exactly as a
composite store is (:mod:`cubehub.output.layout`).

When it runs:

* a tile is filled once it is complete in every season of the source store; tiles still
  being composited wait for a later run (reported as ``tiles_waiting``);
* a season is filled from the seasons that exist when it runs; when later seasons are
  appended to the source (a new year), the filled store appends them too, and every
  season that one of them can fill from (within the rules' windows) is filled again.
  Those seasons' records are dropped *before* the new seasons are appended, in a step of
  its own, so a run killed at any point leaves no record that claims a stale fill.

Empty seasons (no acquisitions, the source's ``acquisitions`` coordinate is 0) are filled
under ``empty_seasons="fill"`` and left NaN under ``"nan"``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import compute
from distributed import Client

from cubehub.compute.gapfill import DEFAULT_RULES, FILL_SOURCE_SUFFIX, UNFILLED, GapFillRules
from cubehub.credentials import redact
from cubehub.errors import InputError, StoreMismatchError
from cubehub.gapfill import GAP_FILL_ATTR, gap_fill, stale_seasons
from cubehub.jobspec import CompositeJob
from cubehub.output.completion import with_complete
from cubehub.output.encoding import fill_source_encoding
from cubehub.output.layout import StoreKind
from cubehub.output.open import open_store, open_with_records, store_format
from cubehub.output.storage import check_output
from cubehub.tiles import Tile
from cubehub.writing import TASK_BUDGET, write_tiles

__all__ = [
    "EmptySeasons",
    "FillResult",
    "check_fill_output",
    "check_job_fill_output",
    "fill_job_output",
    "fill_shares",
    "fill_store",
]

EmptySeasons = Literal["fill", "nan"]
#: Value encodings a filled variable keeps from the source store.
_VALUE_ENCODING = ("dtype", "scale_factor", "add_offset", "_FillValue", "chunks")


@dataclass(frozen=True)
class FillResult:
    """What a gap-filling run did.

    Attributes:
        output: the filled store.
        tiles_written: tiles filled in this run.
        tiles_skipped: tiles already filled and up to date.
        tiles_waiting: tiles not yet complete in every season of the source store.
        seasons_refilled: seasons filled again because a season they fill from appeared.
        snapshot_id: the Icechunk snapshot committed (None for Zarr).
        seconds: wall time.
    """

    output: str
    tiles_written: list[str]
    tiles_skipped: list[str]
    tiles_waiting: list[str]
    seasons_refilled: list[str]
    snapshot_id: str | None
    seconds: float


def _settings(source: str, rules: GapFillRules, empty_seasons: EmptySeasons) -> dict[str, Any]:
    """What makes a filled store's values: kept in its root attributes."""
    where = source if "://" in source else os.path.abspath(source)
    return {
        "source": redact(where),
        **rules.to_json(),
        "empty_seasons": empty_seasons,
        "codes": rules.legend(),
    }


def _recorded_settings(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        recorded = json.loads(attrs[GAP_FILL_ATTR])
    except (KeyError, TypeError, ValueError):
        return None
    if isinstance(recorded, dict):
        recorded["codes"] = {int(k): v for k, v in recorded.get("codes", {}).items()}
        return recorded
    return None


def check_fill_output(
    source: str,
    output: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    rules: GapFillRules = DEFAULT_RULES,
    empty_seasons: EmptySeasons = "fill",
    overwrite: bool = False,
) -> xr.Dataset | None:
    """Check, before any compute, that ``output`` can take the gap fill of ``source``;
    returns the existing filled store (lazily), or None.

    Raises:
        InputError: ``output`` is ``source``.
        OutputLocationError: ``output`` cannot be written.
        StoreMismatchError: ``output`` holds a store filled from another source or with
            other rules (set overwrite to replace it).
    """
    same = (
        source.rstrip("/") == output.rstrip("/")
        if "://" in source or "://" in output
        else os.path.abspath(source) == os.path.abspath(output)
    )
    if same:
        raise InputError(
            f"the gap-filled store must not be the composite store {redact(source)}: the "
            "observed composites are kept; choose another output for the filled ones"
        )
    check_output(output, storage_options)
    if overwrite:
        return None
    try:
        existing, _, _ = open_with_records(output, storage_options)
    except (InputError, OSError, KeyError, ValueError):
        return None  # nothing there yet, or no cubehub store: open_store says which
    recorded = _recorded_settings(existing.attrs)
    wanted = _settings(source, rules, empty_seasons)
    if recorded is not None and recorded != wanted:
        differ = sorted(k for k in wanted if recorded.get(k) != wanted[k])
        raise StoreMismatchError(
            f"{redact(output)} holds composites gap filled with other settings ({', '.join(differ)}: "
            f"{', '.join(f'{recorded.get(k)!r} there, {wanted[k]!r} now' for k in differ)}). Choose "
            "another output, or set overwrite to replace it"
        )
    return existing


def fill_store(
    source: str,
    output: str,
    client: Client,
    *,
    rules: GapFillRules = DEFAULT_RULES,
    empty_seasons: EmptySeasons = "fill",
    storage_options: Mapping[str, Any] | None = None,
    store_kind: StoreKind | None = None,
    zarr_format: int | None = None,
    overwrite: bool = False,
    tiles: Collection[str] | None = None,
    task_budget: int = TASK_BUDGET,
    show_progress: bool = True,
) -> FillResult:
    """Fill the gaps of the composite store ``source`` into the store ``output``; resumable.

    Args:
        source: a composite store (local path or fsspec URL), Zarr or Icechunk.
        output: the filled store; another URL than ``source``.
        client: a client of the cluster to compute on.
        rules: order and windows of the rules (default eumap's TMWM, see
            :mod:`cubehub.compute.gapfill`).
        empty_seasons: ``"fill"`` (default) or ``"nan"``: whether seasons without any
            acquisition are filled or left NaN.
        storage_options: fsspec options of both stores (same place, same credentials).
        store_kind, zarr_format: of ``output``; default those of ``source``.
        overwrite: replace whatever ``output`` holds (default: refuse a store filled from
            another source or with other rules).
        tiles: only these tile ids (default all); seasons to fill again are dropped in
            every tile, so tiles left out stay hidden in them until a run fills them.
        task_budget: most tasks in one submission (default 100 000).
        show_progress: show a progress bar.

    Raises:
        InputError, StoreMismatchError, OutputLocationError: before any compute.
    """
    started = time.perf_counter()
    options = dict(storage_options or {})
    existing = check_fill_output(
        source, output, options, rules=rules, empty_seasons=empty_seasons, overwrite=overwrite
    )
    kind, fmt = store_format(source, options)
    store_kind, zarr_format = store_kind or kind, zarr_format or fmt
    ds, completion, layout = open_with_records(source, options)
    ds = _with_loaded_seasons(ds.drop_vars("complete", errors="ignore"))
    labels = [str(s) for s in ds["season"].values]
    leave = _empty_seasons(ds) if empty_seasons == "nan" else []
    template = _template(ds, rules, leave, _settings(source, rules, empty_seasons))
    all_tiles = layout.as_tiles()

    refilled: list[str] = []
    if existing is not None:
        filled_before = [str(s) for s in existing["season"].values]
        missing = sorted(set(filled_before) - set(labels))
        if missing:
            raise StoreMismatchError(
                f"{redact(output)} holds season(s) {', '.join(missing)} that {redact(source)} "
                "lacks; set overwrite to fill it anew"
            )
        refilled = stale_seasons(ds, filled_before, rules, leave_unfilled=leave)
        if refilled:
            # Dropped in a step of its own, before the new seasons are appended: a kill
            # between the two leaves the records dropped, never stale ones standing.
            before = open_store(
                output,
                template.sel(season=filled_before),
                all_tiles,
                storage_options=options,
                store_kind=store_kind,
                zarr_format=zarr_format,
            )
            before.forget(refilled)
            before.finish(f"cubehub gap fill: {len(refilled)} season(s) to fill again")
    store = open_store(
        output,
        template,
        all_tiles,
        storage_options=options,
        store_kind=store_kind,
        zarr_format=zarr_format,
        overwrite=overwrite,
    )
    ready = completion.tiles_complete(labels, layout.tiles)
    done = store.completed_tiles()
    wanted = [t for t in all_tiles if tiles is None or t.id in tiles]
    todo = [t for t in wanted if t.id in ready and t.id not in done]

    def graphs() -> Iterator[tuple[Tile, xr.Dataset | None]]:
        for tile in todo:
            yield tile, _tile_dataset(ds, tile, rules, leave, template)

    written = write_tiles(
        store, graphs(), len(todo), client, task_budget=task_budget, show_progress=show_progress
    )
    store.finish(f"cubehub gap fill: {len(written)} tile(s)")
    return FillResult(
        output=output,
        tiles_written=written,
        tiles_skipped=sorted(t.id for t in wanted if t.id in done),
        tiles_waiting=sorted(t.id for t in wanted if t.id not in ready),
        seasons_refilled=refilled,
        snapshot_id=store.snapshot_id,
        seconds=time.perf_counter() - started,
    )


def check_job_fill_output(job: CompositeJob) -> None:
    """:func:`check_fill_output` for a job with ``gap_fill`` (nothing without)."""
    filled = job.gap_fill_output()
    if job.gap_fill is not None and filled is not None:
        check_fill_output(
            job.output,
            filled,
            job.output_storage_options(),
            rules=job.gap_fill.rules(),
            empty_seasons=_policy(job),
            overwrite=job.overwrite,
        )


def fill_job_output(
    job: CompositeJob,
    client: Client,
    *,
    tiles: Collection[str] | None = None,
    task_budget: int = TASK_BUDGET,
    show_progress: bool = True,
) -> FillResult | None:
    """With ``gap_fill``, the job's composites filled into its filled store (None without);
    the end of :meth:`cubehub.pipeline.PreparedJob.run`."""
    filled = job.gap_fill_output()
    if job.gap_fill is None or filled is None:
        return None
    return fill_store(
        job.output,
        filled,
        client,
        rules=job.gap_fill.rules(),
        empty_seasons=_policy(job),
        storage_options=job.output_storage_options(),
        store_kind=job.store_kind,
        zarr_format=job.zarr_format,
        overwrite=job.overwrite,
        tiles=tiles,
        task_budget=task_budget,
        show_progress=show_progress,
    )


def _policy(job: CompositeJob) -> EmptySeasons:
    """Whether seasons without acquisitions are filled (``error`` never gets this far)."""
    return "nan" if job.empty_season_policy == "nan" else "fill"


def _with_loaded_seasons(ds: xr.Dataset) -> xr.Dataset:
    """Season coordinates in memory: every tile's graph reads them otherwise."""
    small = {name: ds[name].compute() for name in ds.coords if ds[name].dims == ("season",)}
    return ds.assign_coords(small)


def _empty_seasons(ds: xr.Dataset) -> list[str]:
    """Seasons the source says had no acquisition at all (its ``acquisitions`` coordinate)."""
    if "acquisitions" not in ds.coords:
        return []
    counts = np.asarray(ds["acquisitions"].values)
    return [str(s) for s, n in zip(ds["season"].values, counts, strict=True) if n == 0]


def _template(
    ds: xr.Dataset, rules: GapFillRules, leave: Sequence[str], settings: Mapping[str, Any]
) -> xr.Dataset:
    """The filled store's full-grid template: the source's variables with their encodings,
    plus the fill-source layers; structure from a one-pixel gap fill, never the whole graph."""
    probe = gap_fill(ds.isel(y=slice(0, 1), x=slice(0, 1)), rules, leave_unfilled=leave)
    attrs = {
        **probe.attrs,
        "title": f"{ds.attrs.get('title', 'cubehub composite')}, gap filled",
        GAP_FILL_ATTR: json.dumps(settings),
    }
    out = xr.Dataset(coords=ds.coords, attrs=attrs)
    for name in out.coords:
        out[name].encoding = {}  # as read; the store writes its own (as encode_composite does)
    # Variable-length strings, as encode_composite writes them (not the fixed width read).
    out["season"] = out["season"].astype(object)
    for name, var in probe.data_vars.items():
        like = ds[name] if name in ds.data_vars else ds[str(name).removesuffix(FILL_SOURCE_SUFFIX)]
        chunks = like.encoding.get("chunks") or tuple(c[0] for c in like.chunks or ())
        sizes = dict(zip(like.dims, chunks, strict=True))
        shape = tuple(ds.sizes[d] for d in var.dims)
        out[name] = (
            var.dims,
            da.zeros(shape, var.dtype, chunks=tuple(sizes[d] for d in var.dims)),
            var.attrs,
        )
        if name in ds.data_vars:
            out[name].encoding = {k: v for k, v in like.encoding.items() if k in _VALUE_ENCODING}
        else:
            out[name].encoding = {
                **fill_source_encoding(),
                "chunks": tuple(sizes[d] for d in var.dims),
            }
    return out


def _tile_dataset(
    ds: xr.Dataset, tile: Tile, rules: GapFillRules, leave: Sequence[str], template: xr.Dataset
) -> xr.Dataset:
    """The lazy filled composite of one tile, encoded as the store holds it."""
    part = ds.isel(y=slice(*tile.y), x=slice(*tile.x))
    filled = gap_fill(part, rules, leave_unfilled=leave)
    for name, var in filled.data_vars.items():
        var.encoding = dict(template[name].encoding)
    return filled


def fill_shares(url: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Share of the values of a filled store (all its filled variables, complete tiles)
    per code meaning (``"observed"``, ``"same_season_1y"``, ..., ``"unfilled"``), 0..1.

    Reads every fill-source layer (uint8, small next to the values); computes on the
    current Dask scheduler (a client's cluster when one is active).
    """
    ds, completion, layout = open_with_records(url, storage_options)
    recorded = _recorded_settings(ds.attrs)
    if recorded is None:
        raise InputError(f"{redact(url)} is not a gap-filled store (no {GAP_FILL_ATTR} attribute)")
    legend: dict[int, str] = recorded["codes"]
    complete = with_complete(ds, completion, layout, mask=False)["complete"]
    outside = UNFILLED + 1  # the bin of pixels in tiles not complete: left out
    bins = [
        da.histogram(
            xr.where(complete, layer.fillna(UNFILLED), outside).data,
            bins=outside + 1,
            range=(0, outside + 1),
        )[0]
        for name, layer in ds.data_vars.items()
        if str(name).endswith(FILL_SOURCE_SUFFIX)
    ]
    if not bins:
        return {}
    totals = np.asarray(compute(sum(bins[1:], bins[0]))[0])[:outside]
    total = float(totals.sum()) or 1.0
    return {legend[c]: float(totals[c]) / total for c in sorted(legend) if totals[c]}
