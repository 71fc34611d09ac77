"""What an export of a composite store writes, checked before anything is written.

:func:`plan_export` opens the store (Zarr or Icechunk, local or object storage) through
:func:`cubehub.output.open.open_with_records`, lists one layer per variable x percentile x
season (per variable x season for those without percentiles: ``valid_count``,
``*_fill_source``), names each with :mod:`cubehub.output.cog_names`, and refuses, naming
the problem and the fix, before any write: a path that is no composite store, a store with
tiles not recorded complete (unless ``allow_incomplete``), names that collide, files that
exist (unless ``overwrite``), a folder that cannot be written.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dask
import numpy as np
import xarray as xr
from pyproj import CRS
from rasterio.transform import Affine

from cubehub.compute.gapfill import FILL_SOURCE_SUFFIX
from cubehub.compute.indices import supported_indices
from cubehub.credentials import redact
from cubehub.errors import InputError, OutputLocationError
from cubehub.grid import SPATIAL_DIMS
from cubehub.output.cog import DEFAULT_BLOCKSIZE, DEFAULT_WINDOW, check_blocksize
from cubehub.output.cog_names import NameFields, default_fields, layer_file_name
from cubehub.output.completion import Completion, TileLayout
from cubehub.output.open import open_with_records

__all__ = ["STAC_FILE", "ExportLayer", "ExportPlan", "LayerKind", "plan_export"]

#: The STAC Collection of an export, in its folder; each season's Item is
#: ``<item id>/<item id>.json`` beside it.
STAC_FILE = "collection.json"
#: Existing files listed in the refusal before "and N more".
_LIST_LIMIT = 5

LayerKind = Literal["reflectance", "temperature", "index", "count", "fill_source"]


@dataclass(frozen=True)
class ExportLayer:
    """One COG of an export: which slice of the store, its name and its encoding."""

    variable: str
    season: str
    percentile: float | None
    """None for variables without percentiles (counts, fill sources)."""
    start: str
    """First day of the season (inclusive), ``YYYY-MM-DD``."""
    end: str
    """Last day of the season (inclusive)."""
    file_name: str
    kind: LayerKind
    dtype: str
    nodata: float
    scale: float
    offset: float
    unit: str
    long_name: str


@dataclass(frozen=True)
class ExportPlan:
    """Everything an export writes, and from what (see :func:`plan_export`)."""

    url: str
    """The store, without secrets."""
    folder: Path
    fields: NameFields
    layers: tuple[ExportLayer, ...]
    epsg: int
    crs_wkt: str
    resolution: float
    """Pixel size, metres."""
    shape: tuple[int, int]
    """(rows, columns)."""
    transform: Affine
    window: int
    """Edge of the windows read at once, px: a multiple of the store's chunks."""
    blocksize: int
    incomplete: Mapping[str, list[str]]
    """Season -> ids of the tiles not recorded complete (exported as nodata)."""
    attrs: Mapping[str, Any]
    """The store's root attributes (provenance)."""
    dataset: xr.Dataset = field(repr=False)
    """The store, lazily, stored integers (not decoded), nothing hidden."""
    completion: Completion = field(repr=False)
    layout: TileLayout = field(repr=False)

    def item_id(self, season: str) -> str:
        """Id of the STAC Item of ``season``: ``<area>-<season label>``."""
        return f"{self.fields.area}-{season}"

    def stac_files(self) -> list[Path]:
        """The STAC files this export writes: the Collection, one Item per season."""
        seasons = dict.fromkeys(layer.season for layer in self.layers)
        items = [self.folder / self.item_id(s) / f"{self.item_id(s)}.json" for s in seasons]
        return [self.folder / STAC_FILE, *items]

    def targets(self) -> list[Path]:
        """Every file this export writes."""
        return [self.folder / layer.file_name for layer in self.layers] + self.stac_files()


def plan_export(
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
) -> ExportPlan:
    """Plan the COG export of the store at ``url`` into ``folder``; reads metadata only and
    writes nothing but ``folder`` itself (created when missing).

    Args:
        url: a composite store (Zarr or Icechunk; a path or an fsspec URL).
        folder: local folder for the COGs and the STAC Collection.
        storage_options: fsspec options without secrets.
        product, area, version: fields of the file names; default from the store (see
            :mod:`cubehub.output.cog_names`).
        overwrite: replace files of the same names (default False: refuse them).
        allow_incomplete: export a store with tiles not recorded complete, their pixels as
            nodata (default False: refuse it, naming the tiles).
        blocksize: internal tile edge of the COGs, px (default 512).

    Raises:
        InputError: not a composite store, incomplete tiles, colliding or existing names,
            bad name fields or blocksize.
        OutputLocationError: the store cannot be read, or ``folder`` cannot be written.
    """
    check_blocksize(blocksize)
    # Here, not on a cluster a notebook may have: the workers may not have this process's
    # credentials, and an export reads in this process anyway.
    with dask.config.set(scheduler="threads"):
        return _plan(
            url,
            Path(folder).expanduser().absolute(),
            storage_options,
            product=product,
            area=area,
            version=version,
            overwrite=overwrite,
            allow_incomplete=allow_incomplete,
            blocksize=blocksize,
        )


def _plan(
    url: str,
    out: Path,
    storage_options: Mapping[str, Any] | None,
    *,
    product: str | None,
    area: str | None,
    version: str | None,
    overwrite: bool,
    allow_incomplete: bool,
    blocksize: int,
) -> ExportPlan:
    if out.exists() and not out.is_dir():
        raise OutputLocationError(f"{out} is not a folder; give a folder for the COGs")
    ds, completion, layout = open_with_records(url, storage_options, decode=False)
    crs, epsg = _check_composite(url, ds)
    incomplete = _incomplete(ds, completion, layout)
    if incomplete and not allow_incomplete:
        raise InputError(
            f"{redact(url)} has tiles not recorded complete ({_describe(incomplete)}); its "
            "unwritten pixels would read as nodata like pixels without a clear observation. "
            "Finish the job first (running it again resumes it), or allow incomplete stores "
            "(--allow-incomplete) to export those tiles as nodata"
        )
    x, y = ds["x"].values, ds["y"].values
    transform = _transform(x, y)
    resolution = float(abs(transform.a))
    fields = default_fields(url, ds.attrs, product=product, area=area, version=version)
    layers = _layers(ds, resolution, epsg, fields)
    if not layers:
        raise InputError(f"{redact(url)} holds no (season, y, x) variable to export")
    chunk = int(ds[layers[0].variable].encoding.get("preferred_chunks", {}).get("y", 512))
    plan = ExportPlan(
        url=redact(url),
        folder=out,
        fields=fields,
        layers=tuple(layers),
        epsg=epsg,
        crs_wkt=crs.to_wkt(),
        resolution=resolution,
        shape=(int(y.size), int(x.size)),
        transform=transform,
        window=max(1, round(DEFAULT_WINDOW / chunk)) * chunk,
        blocksize=blocksize,
        incomplete=incomplete,
        attrs=dict(ds.attrs),
        dataset=ds,
        completion=completion,
        layout=layout,
    )
    _check_names(plan, overwrite)
    _check_folder(out)
    return plan


def _check_composite(url: str, ds: xr.Dataset) -> tuple[CRS, int]:
    missing = [d for d in ("season", *SPATIAL_DIMS) if d not in ds.dims]
    if missing or "spatial_ref" not in ds.variables or "season_start" not in ds.variables:
        raise InputError(
            f"{redact(url)} is a Zarr store but no composite store (it lacks "
            f"{', '.join(missing) or 'spatial_ref or season_start'}); give a store written by "
            "cubehub run"
        )
    crs = CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"])
    epsg = crs.to_epsg()
    if epsg is None:
        raise InputError(
            f"{redact(url)} has a CRS without an EPSG code ({crs.name}); ODSE file names need one"
        )
    return crs, int(epsg)


def _incomplete(ds: xr.Dataset, completion: Completion, layout: TileLayout) -> dict[str, list[str]]:
    """Season -> tiles not complete (written without assets, or not written)."""
    if not layout.tiles:  # written in one go (to_zarr): nobody recorded tiles
        return {}
    out = {}
    for season in (str(s) for s in ds["season"].values):
        missing = sorted(set(layout.tiles) - completion.tiles_complete([season], layout.tiles))
        if missing:
            out[season] = missing
    return out


def _describe(incomplete: Mapping[str, list[str]]) -> str:
    return "; ".join(
        f"{season}: {', '.join(tiles[:_LIST_LIMIT])}"
        + (f" and {len(tiles) - _LIST_LIMIT} more" if len(tiles) > _LIST_LIMIT else "")
        for season, tiles in incomplete.items()
    )


def _transform(x: np.ndarray, y: np.ndarray) -> Affine:
    """The grid's transform from its pixel-centre coordinates (y descending)."""
    if x.size < 2 or y.size < 2:
        raise InputError("a store grid needs at least 2 x 2 pixels to export")
    dx, dy = float(x[1] - x[0]), float(y[1] - y[0])
    return Affine(dx, 0.0, float(x[0]) - dx / 2, 0.0, dy, float(y[0]) - dy / 2)


def _kind(name: str, var: xr.DataArray) -> LayerKind:
    if name == "valid_count":
        return "count"
    if name.endswith(FILL_SOURCE_SUFFIX):
        return "fill_source"
    if name in supported_indices():
        return "index"
    return "temperature" if str(var.attrs.get("units")) == "K" else "reflectance"


def _layers(ds: xr.Dataset, resolution: float, epsg: int, fields: NameFields) -> list[ExportLayer]:
    """One layer per variable x percentile x season, season by season."""
    layers = []
    starts, ends = ds["season_start"].values, ds["season_end"].values
    for k, season in enumerate(str(s) for s in ds["season"].values):
        for name, var in ds.data_vars.items():
            if not {"season", *SPATIAL_DIMS} <= set(var.dims):
                continue
            percentiles = (
                [float(q) for q in ds["percentile"].values] if "percentile" in var.dims else [None]
            )
            attrs = var.attrs
            for q in percentiles:
                layers.append(
                    ExportLayer(
                        variable=str(name),
                        season=season,
                        percentile=q,
                        start=_day(starts[k]),
                        end=_day(ends[k]),
                        file_name=layer_file_name(
                            str(name),
                            q,
                            starts[k],
                            ends[k],
                            resolution_m=resolution,
                            epsg=epsg,
                            fields=fields,
                        ),
                        kind=_kind(str(name), var),
                        dtype=str(var.dtype),
                        nodata=float(attrs.get("_FillValue", var.encoding.get("_FillValue", 0))),
                        scale=float(attrs.get("scale_factor", 1.0)),
                        offset=float(attrs.get("add_offset", 0.0)),
                        unit=str(attrs.get("units", "")),
                        long_name=str(attrs.get("long_name", name)),
                    )
                )
    return layers


def _day(value: Any) -> str:
    return str(np.datetime_as_string(np.datetime64(value, "D")))


def _check_names(plan: ExportPlan, overwrite: bool) -> None:
    names = [layer.file_name for layer in plan.layers]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise InputError(
            f"variables of the store get the same file name ({', '.join(clashes[:_LIST_LIMIT])}): "
            "names are lower case with '_' as '.'; rename the variables"
        )
    existing = [p for p in plan.targets() if p.exists()]
    if existing and not overwrite:
        shown = ", ".join(p.name for p in existing[:_LIST_LIMIT])
        more = len(existing) - _LIST_LIMIT
        raise InputError(
            f"{len(existing)} file(s) of this export exist in {plan.folder} ({shown}"
            f"{f' and {more} more' if more > 0 else ''}); choose another folder, or overwrite "
            "them (--overwrite)"
        )


def _check_folder(folder: Path) -> None:
    """Create ``folder`` and write a probe in it (``os.access`` says yes to root on
    read-only mounts)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".cubehub-write-probe-"):
            pass
    except OSError as exc:
        raise OutputLocationError(
            f"{folder} is not writable ({exc.strerror or exc}); choose another folder"
        ) from None
