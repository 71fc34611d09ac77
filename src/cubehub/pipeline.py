"""One composite job, end to end: search -> normalise -> tiles -> cube -> mask -> composite -> Zarr.

:func:`plan_job` does everything that needs no pixels (search, normalisation, grid, tiles);
:func:`prepare_job` adds the output check, the task budget and the store (created or
reopened), so bad input is caught before any cluster exists (``cubehub run`` prepares
first, then starts the cluster). :meth:`PreparedJob.run` then computes tile by tile: each
tile is one bounded task graph, written as aligned Zarr regions and recorded complete in
the store as soon as all its chunks are written, with a bounded number of tiles in flight
so no submission exceeds the task budget (:mod:`cubehub.writing`); with ``gap_fill`` it then
fills the composites' gaps into a second store (:mod:`cubehub.fill_job`). :func:`run_job`
is both steps. A season without acquisitions is data: NaN layers, ``valid_count`` 0 and a
warning (:mod:`cubehub.empty_seasons`).

Failures keep the store safe and say what went wrong: a tile whose write the storage
refuses (unreachable endpoint, no credentials on the workers, disk full) raises an
:class:`~cubehub.errors.OutputLocationError` naming the tile and the store, the rest of the
submission is cancelled, and every tile recorded before stays recorded. Assets that could
not be read under ``on_read_error: missing`` are recorded per tile (see
:class:`~cubehub.output.completion.Completion`); the next run writes exactly those tiles again.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
import warnings
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace

import dask.array as da
import numpy as np
import pystac
import xarray as xr
from distributed import Client, get_client

from cubehub.catalog.items import NormalizedItems, normalize_items
from cubehub.catalog.scaling import lowest_offsets
from cubehub.composite import seasonal_composite
from cubehub.cube import load_cube
from cubehub.empty_seasons import check_empty_seasons, search_job_items, warn_cloud_masked
from cubehub.errors import ClusterError, EmptySeasonWarning, InputError
from cubehub.fill_job import FillResult, check_job_fill_output, fill_job_output
from cubehub.grid import OutputGrid, grid_for_bbox
from cubehub.jobspec import CompositeJob
from cubehub.output.encoding import encode_composite, provenance_attrs
from cubehub.output.layout import TileStore
from cubehub.output.open import open_store
from cubehub.output.storage import check_output
from cubehub.reader import missing_assets
from cubehub.seasons import SeasonCalendar, calendar_from_name, years_not_begun
from cubehub.tiles import Tile, split_grid
from cubehub.writing import TASK_BUDGET, check_budget, write_tiles

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
    #: Acquisitions (distinct times of the items) in each window of the calendar.
    acquisitions: tuple[int, ...]
    _bboxes: np.ndarray = field(repr=False)  # (n_items, 4) lon/lat boxes, for tile lookups

    @property
    def items(self) -> tuple[pystac.Item, ...]:
        """The normalised, de-duplicated items."""
        return self.normalised.items

    def tile_items(self, tile: Tile) -> NormalizedItems:
        """The items whose footprint box meets ``tile``."""
        west, south, east, north = tile.grid(self.grid).lonlat_bounds()
        b = self._bboxes
        hit = (b[:, 0] <= east) & (b[:, 2] >= west) & (b[:, 1] <= north) & (b[:, 3] >= south)
        return replace(self.normalised, items=tuple(self.items[i] for i in np.flatnonzero(hit)))


@dataclass(frozen=True)
class JobResult:
    """What a finished job did.

    Attributes:
        missing_assets: tile id -> hrefs of the assets it was written without (they could
            not be read and counted as nodata, ``on_read_error: missing``); recorded in the
            store, and the next run writes those tiles again.
        seconds: wall time of preparing and running, seconds.
        gap_fill: what the gap fill did (jobs with ``gap_fill``), else None.
    """

    output: str
    items_found: int
    duplicates_dropped: int
    observations: int
    tiles_written: list[str]
    tiles_skipped: list[str]
    missing_assets: dict[str, list[str]]
    snapshot_id: str | None
    mean_valid_per_season: dict[str, float]
    seconds: float
    gap_fill: FillResult | None = None


def plan_job(job: CompositeJob) -> JobPlan:
    """Search, normalise and tile the job; reads no pixels.

    The grid: ``bounds``, or ``bbox`` snapped outward to whole pixels of the job's ``anchor``
    (``"auto"``: the items' own pixel grid where the output CRS and resolution are theirs).

    A season without acquisitions warns (:class:`~cubehub.errors.EmptySeasonWarning`) or,
    with ``on_empty_season: error``, raises (see :func:`cubehub.empty_seasons.check_empty_seasons`).

    Raises :class:`cubehub.errors.InputError` or a data error for anything that would make
    the job fail or be wrong, before compute starts.
    """
    today = dt.datetime.now(dt.UTC).date()
    future = years_not_begun(job.calendar, job.years, today)
    if future:
        raise InputError(
            f"years {future} have not begun (today is {today}): no scene exists for them yet; "
            "choose past years"
        )
    calendar = calendar_from_name(job.calendar, job.years)
    if job.seasons is not None:
        calendar = calendar.select(job.seasons)
    found = search_job_items(job, calendar, max_cloud_cover=job.max_cloud_cover)
    # A job's collection_profile decides the layout; otherwise each item's own fields do.
    profile = job.resolved_profile if job.collection_profile is not None else None
    normalised = normalize_items(found, bands=job.bands, profile=profile)
    # Items between the chosen seasons (``seasons: [summer]``) are never read.
    inside = calendar.assign([i.datetime for i in normalised.items]) >= 0
    normalised = replace(
        normalised, items=tuple(i for i, keep in zip(normalised.items, inside, strict=True) if keep)
    )
    items = normalised.items
    acquisitions = calendar.counts(sorted({i.datetime for i in items}))
    check_empty_seasons(job, calendar, acquisitions)
    epsg = job.epsg or normalised.common_epsg()
    anchor = normalised.output_anchor(job.anchor, epsg, job.resolution)  # before any pixel
    grid = (
        OutputGrid(epsg, job.resolution, job.bounds)
        if job.bounds
        else grid_for_bbox(job.bbox, epsg, job.resolution, anchor=anchor)
    )
    tiles = split_grid(grid, job.tile_size, job.chunk_size)
    boxes = np.array([i.bbox for i in items], dtype=float)
    return JobPlan(
        job,
        calendar,
        normalised,
        len(found),
        len(found) - len(items),
        grid,
        tiles,
        tuple(int(n) for n in acquisitions),
        boxes,
    )


def tile_composite(plan: JobPlan, tile: Tile, *, read_tag: str = "") -> xr.Dataset:
    """The lazy, encoded composite of one tile (see :func:`cubehub.composite.seasonal_composite`);
    ``read_tag`` labels its missing-asset reports (see :func:`cubehub.reader.missing_assets`)."""
    job = plan.job
    grid = tile.grid(plan.grid)
    items = plan.tile_items(tile)
    if not items.items:
        raise InputError(
            f"tile {tile.id} meets no item; choose a bbox inside the items' footprints"
        )
    cube = load_cube(
        items,
        job.bands,
        grid,
        chunk_size=job.chunk_size,
        on_read_error=job.on_read_error,
        read_tag=read_tag,
        harmonize=job.harmonize,
    )
    with warnings.catch_warnings():
        # Job-wide empty seasons were reported by plan_job; a tile's own are no news.
        warnings.simplefilter("ignore", EmptySeasonWarning)
        composite = seasonal_composite(
            cube,
            plan.calendar,
            percentiles=job.percentiles,
            clear=job.mask.rule(items.profile),
            indices=job.indices,
            index_mode=job.index_mode,
            method=job.method,
            min_count=job.min_count,
        )
    composite = composite.assign_coords(
        acquisitions=(
            "season",
            np.asarray(plan.acquisitions, np.int32),
            {"long_name": "acquisitions in the season over the whole job, before cloud masking"},
        )
    )
    # One DN encoding for every tile and year of the collection, whatever this cube's
    # items say, so tiles of a store and the years appended to it agree.
    floors = lowest_offsets(items.profile)
    encoding = {
        b: (
            float(cube[b].attrs["scale_factor"]),
            min(float(cube[b].attrs["add_offset"]), floors.get(b, np.inf)),
        )
        for b in job.bands
    }
    composite = encode_composite(composite, encoding)
    composite.attrs.update(
        provenance_attrs(job.model_dump(mode="json"), job.collection, [i.id for i in plan.items])
    )
    return composite


@dataclass
class PreparedJob:
    """A job checked and planned, its store created or reopened: all that needs neither
    pixels nor a cluster (see :func:`prepare_job`); :meth:`run` computes it, once."""

    plan: JobPlan
    store: TileStore
    #: The tiles to write, in order, and the ids of those already complete (skipped).
    todo: list[Tile]
    skipped: list[str]
    task_budget: int
    #: When preparing began (``time.perf_counter``), for the job's wall time.
    started: float
    #: The tile ids this writer runs (None: all), also for the gap fill.
    tiles: Collection[str] | None
    _run_id: str = field(repr=False)
    _first: tuple[Tile, xr.Dataset] = field(repr=False)
    _ran: bool = field(default=False, repr=False)

    def read_tag(self, tile: Tile) -> str:
        """The label of ``tile``'s missing-asset reports in this run."""
        return _read_tag(self._run_id, tile)

    def run(self, client: Client, *, show_progress: bool = True) -> JobResult:
        """Compute the tiles to do on ``client``'s cluster, recording each as it is written.

        Raises:
            OutputLocationError: the storage refused a tile's write (naming the tile).
            AssetReadError: an asset could not be read (``on_read_error: fail``).
            InputError: called a second time (prepare the job again).
        """
        if self._ran:
            raise InputError("a prepared job runs once; call prepare_job again to run it again")
        self._ran = True
        job, plan, store = self.plan.job, self.plan, self.store
        missing: dict[str, list[str]] = {}

        def tile_graphs() -> Iterator[tuple[Tile, xr.Dataset | None]]:
            """Each tile to write with its graph, built when its batch is due."""
            for tile in self.todo:
                if not plan.tile_items(tile).items:
                    log.info("tile %s meets no item: recorded complete, nothing written", tile.id)
                    yield tile, None
                elif tile == self._first[0]:
                    yield tile, self._first[1]
                else:
                    yield tile, tile_composite(plan, tile, read_tag=self.read_tag(tile))

        def lacking(tile: Tile) -> list[str]:
            """The assets ``tile`` was written without, recorded with it (a rerun retries)."""
            hrefs = missing_assets(client, tag=self.read_tag(tile))
            if hrefs:
                missing[tile.id] = hrefs
                log.warning(
                    "tile %s written without %d unreadable asset(s), counted as nodata: %s; "
                    "a rerun retries the tile",
                    tile.id,
                    len(hrefs),
                    ", ".join(hrefs),
                )
            return hrefs

        written = write_tiles(
            store,
            tile_graphs(),
            len(self.todo),
            client,
            task_budget=self.task_budget,
            show_progress=show_progress,
            missing=lacking,
        )
        store.finish(f"cubehub run: {len(written)} tile(s)")  # Icechunk commits; STAC records
        counts = store.open()["valid_count"]
        mean_valid = {str(s): float(counts.sel(season=s).mean()) for s in counts.season.values}
        warn_cloud_masked(plan.calendar, plan.acquisitions, mean_valid)
        return JobResult(
            output=job.output,
            items_found=plan.items_found,
            duplicates_dropped=plan.duplicates_dropped,
            observations=len({i.datetime for i in plan.items}),
            tiles_written=written,
            tiles_skipped=self.skipped,
            missing_assets=missing,
            snapshot_id=store.snapshot_id,
            mean_valid_per_season=mean_valid,
            seconds=time.perf_counter() - self.started,
            gap_fill=fill_job_output(
                job,
                client,
                tiles=self.tiles,
                task_budget=self.task_budget,
                show_progress=show_progress,
            ),
        )


def prepare_job(
    job: CompositeJob, *, task_budget: int = TASK_BUDGET, tiles: Collection[str] | None = None
) -> PreparedJob:
    """Everything before compute, in the order that fails fastest: the output location
    (bucket, credentials, endpoint: seconds), the search and plan, the task budget (from one
    tile's graph), then the store, created from the template or reopened and matched.

    Needs no cluster and reads no pixels. Arguments as for :func:`run_job`.

    Raises:
        InputError: bad input (job, output location, store of another job, task budget).
        DataError: the search failed or found nothing.
    """
    started = time.perf_counter()
    options = job.output_storage_options()
    check_output(job.output, options)  # bucket, credentials, endpoint: fail in seconds
    check_job_fill_output(job)  # with gap_fill: the filled store can take this job's fill
    plan = plan_job(job)
    run_id = uuid.uuid4().hex[:12]
    # The store's template is shaped like a tile with data; tiles over no item (sea, gaps
    # between orbits) are recorded complete without writing: readers see nodata there.
    first_tile = next(t for t in plan.tiles if plan.tile_items(t).items)
    first = tile_composite(plan, first_tile, read_tag=_read_tag(run_id, first_tile))
    check_budget(first, first_tile, task_budget)  # before anything is written
    store = open_store(
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
    return PreparedJob(
        plan, store, todo, sorted(done), task_budget, started, tiles, run_id, (first_tile, first)
    )


def current_client() -> Client:
    """The Dask client in use here (the innermost ``with cubehub.cluster()`` or the last
    ``Client(...)`` made); :class:`ClusterError` if there is none."""
    try:
        return get_client()
    except ValueError:
        raise ClusterError(
            "no Dask client: run inside `with cubehub.cluster():` (or make one with "
            "distributed.Client), or pass the client"
        ) from None


def run_job(
    job: CompositeJob,
    client: Client | None = None,
    *,
    task_budget: int = TASK_BUDGET,
    tiles: Collection[str] | None = None,
    show_progress: bool = True,
) -> JobResult:
    """Run a job on ``client``'s cluster; resumable: complete tiles are skipped.

    :func:`prepare_job`, then :meth:`PreparedJob.run`.

    Args:
        job: the job.
        client: a client of the cluster to compute on; default the current one (inside
            ``with cubehub.cluster():``, see :func:`cubehub.cluster`).
        task_budget: most tasks in one submission to the scheduler, default 100 000.
        tiles: only these tile ids (e.g. ``r0000c0001``), default all: several writers
            may share one job's tiles, each running its own part.
        show_progress: show a progress bar (a widget in notebooks).

    Example:
        >>> with cluster("local"):  # doctest: +SKIP
        ...     run_job(make_job(stac_api="earth-search", bbox=(15.4, 47.0, 15.5, 47.08),
        ...                      years=[2023], output="graz.zarr"))
    """
    client = client or current_client()  # before the store is made
    prepared = prepare_job(job, task_budget=task_budget, tiles=tiles)
    return prepared.run(client, show_progress=show_progress)


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


def _read_tag(run_id: str, tile: Tile) -> str:
    """The label of a tile's missing-asset reports: a run's reports never mix with another's."""
    return f"{run_id}/{tile.id}"


__all__: Sequence[str] = [
    "TASK_BUDGET",
    "JobPlan",
    "JobResult",
    "PreparedJob",
    "current_client",
    "plan_job",
    "prepare_job",
    "run_job",
    "template",
    "tile_composite",
]
