"""One composite job, end to end: search -> normalise -> cube -> mask -> composite -> Zarr.

Everything that can be checked without reading pixels is checked before the cluster gets
any work (:func:`prepare`); :func:`run_composite` then computes and writes.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import xarray as xr
from distributed import Client

from cubehub import progress
from cubehub.composite import seasonal_composite
from cubehub.compute.masks import SclMaskRule, clear_mask_xr
from cubehub.cube import Cube, OutputGrid, grid_for_bbox, load_cube
from cubehub.items import normalize_items
from cubehub.jobspec import CompositeJob
from cubehub.search import search_items
from cubehub.seasons import SeasonCalendar, calendar_from_name
from cubehub.store import check_writable, encode_composite, provenance_attrs, write_zarr


@dataclass(frozen=True)
class PreparedJob:
    """A job checked and planned on metadata only: what will be read and written."""

    job: CompositeJob
    calendar: SeasonCalendar
    items_found: int
    duplicates_dropped: int
    cube: Cube
    composite: xr.Dataset


@dataclass(frozen=True)
class CompositeResult:
    """What a finished job did."""

    output: str
    items_found: int
    duplicates_dropped: int
    observations: int
    mean_valid_per_season: dict[str, float]
    seconds: float


def prepare(job: CompositeJob) -> PreparedJob:
    """Search, normalise and build the lazy composite; reads no pixels.

    Raises :class:`cubehub.errors.InputError` or a data error for anything that would make
    the job fail or be wrong, before compute starts.
    """
    check_writable(job.output, overwrite=job.overwrite)
    calendar = calendar_from_name(job.calendar, job.years)
    first, last = calendar.time_range()
    items = search_items(
        job.stac_api,
        collections=[job.collection],
        bbox=job.bbox,
        datetime=f"{first.isoformat()}/{last.isoformat()}",
        max_cloud_cover=job.max_cloud_cover,
    )
    normalised = normalize_items(items, bands=job.bands)
    kept = normalised.items
    epsg = job.epsg or _most_common_epsg(kept)
    grid = (
        OutputGrid(epsg, job.resolution, job.bounds)
        if job.bounds
        else grid_for_bbox(job.bbox, epsg, job.resolution)
    )
    cube = load_cube(kept, job.bands, grid, mask_band="scl", chunk_size=job.chunk_size)
    assert cube.mask is not None
    rule = SclMaskRule(
        keep=job.mask.keep_classes,
        dilate_cloud_m=job.mask.dilate_cloud_m,
        dilate_shadow_m=job.mask.dilate_shadow_m,
    )
    clear = clear_mask_xr(cube.mask, rule, grid.resolution)
    composite = seasonal_composite(
        cube,
        calendar,
        percentiles=job.percentiles,
        clear=clear,
        indices=job.indices,
        index_mode=job.index_mode,
        method=job.method,
        min_count=job.min_count,
    )
    composite = composite.rio.write_crs(epsg).rio.write_coordinate_system()
    composite = encode_composite(composite, {b: (cube.scale[b], cube.offset[b]) for b in job.bands})
    composite.attrs.update(provenance_attrs(job.model_dump(mode="json"), job.collection, cube.item_ids))
    return PreparedJob(
        job=job,
        calendar=calendar,
        items_found=len(items),
        duplicates_dropped=len(items) - len(kept),
        cube=cube,
        composite=composite,
    )


def run_composite(job: CompositeJob, client: Client, *, show_progress: bool = True) -> CompositeResult:
    """Run a job on ``client``'s cluster and write its Zarr store.

    Example:
        >>> with cluster("local") as client:  # doctest: +SKIP
        ...     result = run_composite(make_job(stac_api="earth-search", bbox=(...),
        ...                                     years=[2022], output="out.zarr"), client)
    """
    started = time.perf_counter()
    prepared = prepare(job)
    delayed = write_zarr(
        prepared.composite,
        job.output,
        zarr_format=job.zarr_format,
        overwrite=job.overwrite,
        compute=False,
    )
    future = client.compute(delayed)
    progress.wait([future], "composite", show=show_progress)
    future.result()
    counts = xr.open_zarr(job.output)["valid_count"]
    mean_valid = {str(s): float(counts.sel(season=s).mean()) for s in counts.season.values}
    return CompositeResult(
        output=job.output,
        items_found=prepared.items_found,
        duplicates_dropped=prepared.duplicates_dropped,
        observations=int(prepared.cube.data.sizes["time"]),
        mean_valid_per_season=mean_valid,
        seconds=time.perf_counter() - started,
    )


def _most_common_epsg(items: list) -> int:
    codes = Counter(int(i.properties["proj:epsg"]) for i in items)
    return codes.most_common(1)[0][0]

