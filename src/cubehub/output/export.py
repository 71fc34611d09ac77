"""``cubehub export``: a composite store as ODSE-style Cloud Optimized GeoTIFFs and a STAC
Collection of them.

:func:`export_cogs` plans (:func:`cubehub.output.export_plan.plan_export`: every check, no
write), then writes the layers of each variable and season together (p25/p50/p75 share the
store's chunks, so each chunk is read once) with :func:`cubehub.output.cog.write_cogs`,
then the STAC Collection (:mod:`cubehub.output.export_stac`). The COGs hold the store's
integers exactly, with its scale/offset, nodata and unit; decoded values are DN x scale +
offset, as in the store.

A store whose tiles are not all recorded complete is refused unless ``allow_incomplete``:
then pixels of those tiles are written as nodata (whatever their chunks hold), the export
warns (:class:`~cubehub.errors.CubehubWarning`) and each season's Item lists the tiles in
``cubehub:tiles_incomplete``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import xarray as xr
from rasterio.crs import CRS

from cubehub.errors import CubehubWarning
from cubehub.output.cog import DEFAULT_BLOCKSIZE, CogLayer, windows, write_cogs
from cubehub.output.completion import with_complete
from cubehub.output.export_plan import ExportLayer, ExportPlan, plan_export
from cubehub.output.export_stac import write_export_collection

__all__ = ["ExportResult", "export_cogs", "layer_tags"]

#: ``progress(done, total, file name)``: steps (windows read, COGs copied) done of all.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    folder: Path
    files: list[Path]
    """The COGs, in the order of the plan's layers."""
    collection: Path
    """The STAC Collection (``collection.json``)."""
    bytes_written: int
    """Size of the COGs."""
    seconds: float
    incomplete: Mapping[str, list[str]]
    """Season -> tiles exported as nodata because they were not complete."""


def export_cogs(
    url: str,
    folder: str | Path,
    *,
    storage_options: Mapping[str, Any] | None = None,
    product: str | None = None,
    area: str | None = None,
    version: str | None = None,
    overwrite: bool = False,
    allow_incomplete: bool = False,
    blocksize: int = DEFAULT_BLOCKSIZE,
    progress: Progress | None = None,
) -> ExportResult:
    """Export every variable x percentile x season of the store at ``url`` as a COG.

    Arguments as :func:`cubehub.output.export_plan.plan_export`, which checks all of them
    before anything is written; ``progress`` is called after each step.

    Example:
        >>> export_cogs("graz-2022.zarr", "cogs/", area="graz")  # doctest: +SKIP
    """
    started = time.perf_counter()
    with dask.config.set(scheduler="threads"):  # in this process (see plan_export)
        return _export(
            url,
            Path(folder),
            started,
            storage_options=storage_options,
            product=product,
            area=area,
            version=version,
            overwrite=overwrite,
            allow_incomplete=allow_incomplete,
            blocksize=blocksize,
            progress=progress,
        )


def _export(
    url: str,
    folder: Path,
    started: float,
    *,
    storage_options: Mapping[str, Any] | None,
    product: str | None,
    area: str | None,
    version: str | None,
    overwrite: bool,
    allow_incomplete: bool,
    blocksize: int,
    progress: Progress | None,
) -> ExportResult:
    plan = plan_export(
        url,
        folder,
        storage_options=storage_options,
        product=product,
        area=area,
        version=version,
        overwrite=overwrite,
        allow_incomplete=allow_incomplete,
        blocksize=blocksize,
    )
    if plan.incomplete:
        tiles = {t for ts in plan.incomplete.values() for t in ts}
        warnings.warn(
            f"{plan.url}: {len(tiles)} tile(s) not recorded complete in "
            f"{len(plan.incomplete)} season(s) are exported as nodata "
            f"({', '.join(sorted(tiles)[:5])}{' ...' if len(tiles) > 5 else ''})",
            CubehubWarning,
            stacklevel=3,
        )
    ds = _masked(plan)
    groups: dict[tuple[str, str], list[ExportLayer]] = {}
    for layer in plan.layers:
        groups.setdefault((layer.variable, layer.season), []).append(layer)
    rows, cols = plan.shape
    per_window = sum(1 for _ in windows(rows, cols, plan.window))
    total = len(groups) * per_window + len(plan.layers)
    done = 0
    written = 0
    crs = CRS.from_wkt(plan.crs_wkt)
    for layers in groups.values():
        name = layers[0].file_name

        def step(name: str = name) -> None:
            nonlocal done
            done += 1
            if progress:
                progress(done, total, name)

        arrays = [_layer_array(ds, layer) for layer in layers]
        written += write_cogs(
            [_cog_layer(plan, layer) for layer in layers],
            arrays,
            crs=crs,
            transform=plan.transform,
            blocksize=plan.blocksize,
            window=plan.window,
            on_window=step,
        )
    collection = write_export_collection(plan)
    return ExportResult(
        folder=plan.folder,
        files=[plan.folder / layer.file_name for layer in plan.layers],
        collection=collection,
        bytes_written=written,
        seconds=time.perf_counter() - started,
        incomplete=dict(plan.incomplete),
    )


def _masked(plan: ExportPlan) -> xr.Dataset:
    """The store's integers, with pixels of incomplete tiles set to each variable's nodata."""
    ds = plan.dataset
    if not plan.incomplete:
        return ds
    ds = with_complete(ds, plan.completion, plan.layout, mask=False)
    out = ds.copy()
    for layer in {layer.variable: layer for layer in plan.layers}.values():
        var = ds[layer.variable]
        fill = var.dtype.type(layer.nodata)
        out[layer.variable] = (
            var.where(ds["complete"], fill).astype(var.dtype).assign_attrs(var.attrs)
        )
    return out


def _layer_array(ds: xr.Dataset, layer: ExportLayer) -> xr.DataArray:
    var = ds[layer.variable].sel(season=layer.season)
    if layer.percentile is not None:
        var = var.sel(percentile=layer.percentile)
    return var.transpose("y", "x")


def layer_tags(plan: ExportPlan, layer: ExportLayer) -> dict[str, str]:
    """The descriptive GDAL tags of a layer's COG: what it is, its season and its source."""
    attrs = plan.attrs
    job = attrs.get("cubehub_job")
    tags = {
        "variable": layer.variable,
        "long_name": layer.long_name,
        "percentile": "" if layer.percentile is None else f"{layer.percentile:g}",
        "season": layer.season,
        "season_start": layer.start,
        "season_end": layer.end,
        "units": layer.unit,
        "source_store": plan.url,
        "source_collection": str(attrs.get("stac_collection", "")),
        "cubehub_version": str(attrs.get("cubehub_version", "")),
        "cubehub_job": str(job) if job else "",
        "incomplete_tiles": ", ".join(plan.incomplete.get(layer.season, [])),
    }
    return {k: v for k, v in tags.items() if v}


def _cog_layer(plan: ExportPlan, layer: ExportLayer) -> CogLayer:
    q = f" p{layer.percentile:g}" if layer.percentile is not None else ""
    return CogLayer(
        path=plan.folder / layer.file_name,
        nodata=layer.nodata,
        scale=layer.scale,
        offset=layer.offset,
        unit=layer.unit,
        description=f"{layer.long_name}{q} {layer.start}..{layer.end}",
        tags=layer_tags(plan, layer),
        resampling="nearest" if layer.kind in ("count", "fill_source") else "average",
    )
