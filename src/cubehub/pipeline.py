"""One composite job, end to end: search -> normalise -> tiles -> cube -> mask -> composite -> Zarr.

:func:`plan_job` does everything that needs no pixels (search, normalisation, grid, tiles)
and so catches bad input before the cluster gets any work. :func:`run_job` then computes
tile by tile: each tile is one bounded task graph, written as an aligned Zarr region and
marked complete in the store only after all its chunks are written, with a bounded number
of tiles in flight so no submission exceeds the task budget.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

import dask.array as da
import numpy as np
import pystac
import xarray as xr
from distributed import Client
from pyproj import Transformer

from cubehub import progress
from cubehub.composite import seasonal_composite
from cubehub.compute.masks import MaskRule, SclMaskRule, rule_for_kind
from cubehub.cube import OutputGrid, grid_for_bbox, load_cube
from cubehub.errors import InputError
from cubehub.items import NormalizedItems, normalize_items
from cubehub.jobspec import CompositeJob
from cubehub.reader import missing_assets
from cubehub.search import search_items
from cubehub.seasons import SeasonCalendar, calendar_from_name
from cubehub.store import (
    CompositeStore,
    check_output,
    encode_composite,
    job_storage_options,
    provenance_attrs,
)
from cubehub.tiles import Tile, split_grid

#: Default largest number of tasks in one submission to the scheduler.
TASK_BUDGET = 100_000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobPlan:
    """A job checked and planned on metadata only."""

    job: CompositeJob
    calendar: SeasonCalendar
    normalised: NormalizedItems
    items_found: int
    duplicates_dropped: int
    grid: OutputGrid
    tiles: list[Tile]
    _bboxes: np.ndarray = field(repr=False)  # (n_items, 4) lon/lat boxes, for tile lookups

    @property
    def items(self) -> tuple[pystac.Item, ...]:
        """The normalised, de-duplicated items."""
        return self.normalised.items

    def tile_items(self, tile: Tile) -> NormalizedItems:
        """The items whose footprint box meets ``tile``."""
        west, south, east, north = _lonlat_box(tile.grid(self.grid))
        b = self._bboxes
        hit = (b[:, 0] <= east) & (b[:, 2] >= west) & (b[:, 1] <= north) & (b[:, 3] >= south)
        return replace(self.normalised, items=tuple(self.items[i] for i in np.flatnonzero(hit)))


@dataclass(frozen=True)
class JobResult:
    """What a finished job did."""

    output: str
    items_found: int
    duplicates_dropped: int
    observations: int
    tiles_written: list[str]
    tiles_skipped: list[str]
    missing_assets: list[str]
    snapshot_id: str | None
    mean_valid_per_season: dict[str, float]
    seconds: float


def plan_job(job: CompositeJob) -> JobPlan:
    """Search, normalise and tile the job; reads no pixels.

    Raises :class:`cubehub.errors.InputError` or a data error for anything that would make
    the job fail or be wrong, before compute starts.
    """
    calendar = calendar_from_name(job.calendar, job.years)
    first, last = calendar.time_range()
    found = search_items(
        job.stac_api,
        collections=[job.collection],
        bbox=job.bbox,
        datetime=f"{first.isoformat()}/{last.isoformat()}",
        max_cloud_cover=job.max_cloud_cover,
        filter=job.filter,
    )
    normalised = normalize_items(found, bands=job.bands)
    items = normalised.items
    epsg = job.epsg or Counter(int(i.properties["proj:epsg"]) for i in items).most_common(1)[0][0]
    grid = (
        OutputGrid(epsg, job.resolution, job.bounds)
        if job.bounds
        else grid_for_bbox(job.bbox, epsg, job.resolution)
    )
    tiles = split_grid(grid, job.tile_size, job.chunk_size)
    boxes = np.array([i.bbox for i in items], dtype=float)
    return JobPlan(job, calendar, normalised, len(found), len(found) - len(items), grid, tiles, boxes)


def tile_composite(plan: JobPlan, tile: Tile) -> xr.Dataset:
    """The lazy, encoded composite of one tile (see :func:`cubehub.composite.seasonal_composite`)."""
    job = plan.job
    grid = tile.grid(plan.grid)
    items = plan.tile_items(tile)
    if not items.items:
        raise InputError(f"tile {tile.id} meets no item; choose a bbox inside the items' footprints")
    cube = load_cube(items, job.bands, grid, chunk_size=job.chunk_size, on_read_error=job.on_read_error)
    composite = seasonal_composite(
        cube,
        plan.calendar,
        percentiles=job.percentiles,
        clear=cube.clear(_mask_rule(job, cube.mask_kind)),
        indices=job.indices,
        index_mode=job.index_mode,
        method=job.method,
        min_count=job.min_count,
    )
    composite = encode_composite(composite, {b: (cube.scale[b], cube.offset[b]) for b in job.bands})
    composite.attrs.update(
        provenance_attrs(job.model_dump(mode="json"), job.collection, [i.id for i in plan.items])
    )
    return composite


def run_job(
    job: CompositeJob,
    client: Client,
    *,
    task_budget: int = TASK_BUDGET,
    tiles: Collection[str] | None = None,
    show_progress: bool = True,
) -> JobResult:
    """Run a job on ``client``'s cluster; resumable: complete tiles are skipped.

    Args:
        job: the job.
        client: a client of the cluster to compute on (see :func:`cubehub.cluster`).
        task_budget: most tasks in one submission to the scheduler, default 100 000.
        tiles: only these tile ids (e.g. ``r0000c0001``), default all: several writers
            may share one job's tiles, each running its own part.
        show_progress: show a progress bar (a widget in notebooks).

    Example:
        >>> with cluster("local") as client:  # doctest: +SKIP
        ...     run_job(make_job(stac_api="earth-search", bbox=(15.4, 47.0, 15.5, 47.08),
        ...                      years=[2023], output="graz.zarr"), client)
    """
    started = time.perf_counter()
    options = job_storage_options(job)
    check_output(job.output, options)  # bucket, credentials, endpoint: fail in seconds
    plan = plan_job(job)
    # The store's template is shaped like a tile with data; tiles over no item (sea, gaps
    # between orbits) are recorded complete without writing: readers see nodata there.
    first_tile = next(t for t in plan.tiles if plan.tile_items(t).items)
    first = tile_composite(plan, first_tile)
    _check_budget(first, first_tile, task_budget)  # before anything is written
    store = CompositeStore.open_or_create(
        job.output,
        template(first, plan.grid, job.chunk_size),
        plan.tiles,
        storage_options=options,
        zarr_format=job.zarr_format,
        overwrite=job.overwrite,
        store_kind=job.store_kind,
    )
    done = store.completed_tiles()
    todo = [t for t in plan.tiles if t.id not in done and (tiles is None or t.id in tiles)]
    written: list[str] = []
    batch: list[tuple[Tile, xr.Dataset]] = []
    batch_tasks = 0

    def submit_batch() -> None:
        futures = [client.compute(store.write_tile(ds, tile)) for tile, ds in batch]
        ids = ", ".join(tile.id for tile, _ in batch)
        progress.wait(futures, f"tiles {len(written) + 1}-{len(written) + len(batch)} of {len(todo)}", show=show_progress)
        for (tile, _), future in zip(batch, futures, strict=True):
            store.mark_complete(tile, future.result())  # transactional stores merge it here
            written.append(tile.id)
        log.info("tiles complete: %s (%d of %d)", ids, len(written), len(todo))
        batch.clear()

    # Greedy packing, in tile order: a submission closes when the next tile's graph would
    # take it over the task budget (the rule `cubehub plan` reports with pack_tiles).
    for tile in todo:
        if not plan.tile_items(tile).items:
            store.mark_complete(tile)
            written.append(tile.id)
            log.info("tile %s meets no item: recorded complete, nothing written", tile.id)
            continue
        ds = first if tile == first_tile else tile_composite(plan, tile)
        tasks = _check_budget(ds, tile, task_budget)
        if batch and batch_tasks + tasks > task_budget:
            submit_batch()
            batch_tasks = 0
        batch.append((tile, ds))
        batch_tasks += tasks
    if batch:
        submit_batch()
    store.finish(f"cubehub run: {len(written)} tile(s)")  # Icechunk commits; STAC records refreshed
    counts = store.open()["valid_count"]
    mean_valid = {str(s): float(counts.sel(season=s).mean()) for s in counts.season.values}
    return JobResult(
        output=job.output,
        items_found=plan.items_found,
        duplicates_dropped=plan.duplicates_dropped,
        observations=len({i.datetime for i in plan.items}),
        tiles_written=written,
        tiles_skipped=sorted(done),
        missing_assets=missing_assets(client),
        snapshot_id=store.snapshot_id,
        mean_valid_per_season=mean_valid,
        seconds=time.perf_counter() - started,
    )


def template(tile_ds: xr.Dataset, grid: OutputGrid, chunk_size: int) -> xr.Dataset:
    """A lazy full-grid dataset shaped like ``tile_ds`` (same variables, encodings, attrs).

    Built from one tile's structure, never from the whole area's graph, so creating the
    store of a continent-sized job costs no more than one tile.
    """
    rows, cols = grid.shape
    xmin, _, _, ymax = grid.bounds
    res = grid.resolution
    coords = {name: coord for name, coord in tile_ds.coords.items() if name not in ("x", "y")}
    coords["x"] = ("x", xmin + (np.arange(cols) + 0.5) * res, tile_ds.x.attrs)
    coords["y"] = ("y", ymax - (np.arange(rows) + 0.5) * res, tile_ds.y.attrs)
    out = xr.Dataset(coords=coords, attrs=tile_ds.attrs)
    for name, var in tile_ds.data_vars.items():
        shape = tuple(rows if d == "y" else cols if d == "x" else var.sizes[d] for d in var.dims)
        chunks = tuple(chunk_size if d in ("y", "x") else var.sizes[d] for d in var.dims)
        out[name] = (var.dims, da.zeros(shape, dtype=var.dtype, chunks=chunks), var.attrs)
        out[name].encoding = dict(var.encoding)
    return out


def _mask_rule(job: CompositeJob, kind: str) -> MaskRule:
    if kind == "scl":
        return SclMaskRule(
            keep=job.mask.keep_classes,
            dilate_cloud_m=job.mask.dilate_cloud_m,
            dilate_shadow_m=job.mask.dilate_shadow_m,
        )
    return rule_for_kind(kind, dilate_cloud_m=job.mask.dilate_cloud_m, dilate_shadow_m=job.mask.dilate_shadow_m)


def _check_budget(tile_ds: xr.Dataset, tile: Tile, task_budget: int) -> int:
    """The number of tasks of one tile's graph; refuses a tile above the budget."""
    tasks = len(tile_ds.__dask_graph__())
    if tasks > task_budget:
        raise InputError(
            f"tile {tile.id} needs {tasks} tasks, above the task budget of {task_budget}; "
            "lower tile_size or raise the budget"
        )
    return tasks


def _lonlat_box(grid: OutputGrid) -> tuple[float, float, float, float]:
    to_lonlat = Transformer.from_crs(grid.epsg, 4326, always_xy=True)
    xmin, ymin, xmax, ymax = grid.bounds
    lons, lats = to_lonlat.transform([xmin, xmax, xmin, xmax], [ymin, ymin, ymax, ymax])
    return min(lons), min(lats), max(lons), max(lats)


__all__: Sequence[str] = ["JobPlan", "JobResult", "plan_job", "run_job", "template", "tile_composite"]
