"""What is in a composite store, for people (``cubehub info``) and programs (``--json``).

Reads metadata, the completion records and the STAC item only: no chunk is read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from pyproj import CRS

from cubehub.credentials import redact
from cubehub.errors import InputError
from cubehub.output.completion import Completion, TileLayout
from cubehub.output.layout import quiet_zarr
from cubehub.output.stac_records import read_stac_item, stac_location
from cubehub.output.storage import check_no_secrets, filesystem, storage_errors
from cubehub.output.zarr_store import CompositeStore

__all__ = ["SeasonInfo", "StoreInfo", "VariableInfo", "describe_store", "format_store_info"]

#: Incomplete tile ids listed per season in the text summary before "and N more".
LIST_LIMIT = 8


@dataclass(frozen=True)
class VariableInfo:
    """One data variable: dims, stored dtype and its CF decoding."""

    name: str
    dims: list[str]
    dtype: str
    units: str
    long_name: str
    scale_factor: float | None
    add_offset: float | None
    fill_value: float | None


@dataclass(frozen=True)
class SeasonInfo:
    """One season window and how much of it is written."""

    label: str
    start: str
    end: str
    tiles_complete: int
    incomplete: list[str]


@dataclass(frozen=True)
class StoreInfo:
    """A summary of a store (see :func:`describe_store`)."""

    url: str
    kind: str
    zarr_format: int
    shape: list[int]
    crs: str
    resolution: float
    bounds: list[float]
    chunks: list[int]
    compression: str
    percentiles: list[float]
    variables: list[VariableInfo]
    seasons: list[SeasonInfo]
    tiles_total: int
    provenance: dict[str, Any]
    stac: str | None
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    records: bool = True
    """Whether the store has cubehub's tile records; False for one written in one go (e.g.
    with ``to_zarr``), whose completeness nobody recorded."""
    #: tile id -> hrefs of the assets it was written without (counted as nodata); the
    #: next run of the job writes those tiles again.
    missing_assets: dict[str, list[str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool | None:
        """Every tile written in every season; None when the store has no records to say."""
        if not self.records:
            return None
        return all(s.tiles_complete == self.tiles_total for s in self.seasons)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["complete"] = self.complete
        return out


def describe_store(url: str, storage_options: Mapping[str, Any] | None = None) -> StoreInfo:
    """Summarise the store at ``url``: grid, CRS, variables, seasons, completeness, provenance.

    Raises:
        InputError: nothing (or no composite store) at ``url``.
        OutputLocationError: the location cannot be read (bucket, credentials, endpoint).
    """
    options = dict(storage_options or {})
    check_no_secrets(options)
    fs, path = filesystem(url, options)
    snapshots: list[dict[str, Any]] = []
    with storage_errors(url):
        if not fs.exists(path):
            raise InputError(
                f"no store at {redact(url)}; check the path (and endpoint_url for s3://)"
            )
        if fs.exists(f"{path.rstrip('/')}/refs"):
            from cubehub.output.icechunk_store import open_icechunk, snapshot_history

            ds, completion, layout = open_icechunk(url, options, decode=False)
            kind, zarr_format = "icechunk", 3
            snapshots = snapshot_history(url, options)
            records = True
        else:
            try:
                with quiet_zarr():
                    ds = xr.open_zarr(
                        url,
                        storage_options=options or None,
                        decode_coords="all",
                        mask_and_scale=False,
                    )
            except (FileNotFoundError, KeyError, ValueError) as exc:
                raise InputError(
                    f"{redact(url)} is not a Zarr store ({exc}); check the path"
                ) from None
            zarr_store = CompositeStore(url, options)
            completion, layout = zarr_store.completion()
            records = zarr_store.has_records()
            kind = "zarr"
            zarr_format = 3 if fs.exists(f"{path.rstrip('/')}/zarr.json") else 2
        stac = stac_location(url) if read_stac_item(url, options) is not None else None
    return _summarise(url, ds, kind, zarr_format, completion, layout, stac, snapshots, records)


def _summarise(
    url: str,
    ds: xr.Dataset,
    kind: str,
    zarr_format: int,
    completion: Completion,
    layout: TileLayout,
    stac: str | None,
    snapshots: list[dict[str, Any]],
    records: bool,
) -> StoreInfo:
    x, y = ds["x"].values, ds["y"].values
    res = float(abs(x[1] - x[0])) if x.size > 1 else 0.0
    crs = (
        CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"]) if "spatial_ref" in ds.variables else None
    )
    first = next(iter(ds.data_vars.values()))
    chunks = [int(c) for c in first.encoding.get("chunks") or first.shape]
    compressors = first.encoding.get("compressors") or ()
    variables = [
        VariableInfo(
            name=str(name),
            dims=[str(d) for d in var.dims],
            dtype=str(var.dtype),
            units=str(var.attrs.get("units", "")),
            long_name=str(var.attrs.get("long_name", "")),
            scale_factor=_number(var.attrs.get("scale_factor")),
            add_offset=_number(var.attrs.get("add_offset")),
            fill_value=_number(var.attrs.get("_FillValue", var.encoding.get("_FillValue"))),
        )
        for name, var in ds.data_vars.items()
    ]
    seasons = []
    for k, label in enumerate(str(s) for s in ds["season"].values):
        done = completion.tiles_complete([label], layout.tiles)
        seasons.append(
            SeasonInfo(
                label=label,
                start=_day(ds["season_start"].values[k]),
                end=_day(ds["season_end"].values[k]),
                tiles_complete=len(done),
                incomplete=sorted(set(layout.tiles) - done),
            )
        )
    attrs = ds.attrs
    provenance = {
        "cubehub_version": attrs.get("cubehub_version"),
        "stac_collection": attrs.get("stac_collection"),
        "source_items": len(json.loads(attrs.get("stac_item_ids", "[]"))),
        "job": json.loads(attrs["cubehub_job"]) if "cubehub_job" in attrs else None,
    }
    return StoreInfo(
        url=redact(url),
        kind=kind,
        zarr_format=zarr_format,
        shape=[int(y.size), int(x.size)],
        crs=(f"EPSG:{crs.to_epsg()}" if crs.to_epsg() else crs.name) if crs else "none",
        resolution=res,
        bounds=[
            float(x.min()) - res / 2,
            float(y.min()) - res / 2,
            float(x.max()) + res / 2,
            float(y.max()) + res / 2,
        ],
        chunks=chunks,
        compression=", ".join(_codec_name(c) for c in compressors) or "none",
        percentiles=[float(q) for q in ds["percentile"].values],
        variables=variables,
        seasons=seasons,
        tiles_total=len(layout),
        provenance=provenance,
        stac=stac,
        snapshots=snapshots,
        records=records,
        missing_assets=dict(sorted(completion.missing.items())),
    )


def _day(value: Any) -> str:
    return str(np.datetime_as_string(np.asarray(value).astype("datetime64[D]")))


def _number(value: Any) -> float | None:
    return None if value is None else float(np.asarray(value).item())


def _codec_name(codec: Any) -> str:
    config = codec.to_dict() if hasattr(codec, "to_dict") else codec.get_config()
    inner = config.get("configuration", config)
    name = config.get("name", config.get("id", type(codec).__name__))
    details = ", ".join(
        f"{k}={v}" for k, v in inner.items() if k in ("cname", "clevel", "shuffle", "level")
    )
    return f"{name} ({details})" if details else str(name)


def format_store_info(info: StoreInfo) -> str:
    """A few lines of text for people."""
    lines = [
        f"Store        {info.url}  ({info.kind}, Zarr format {info.zarr_format})",
        f"Grid         {info.shape[0]} x {info.shape[1]} px, {info.resolution:g} m, {info.crs}, "
        f"bounds {', '.join(f'{b:.0f}' for b in info.bounds)}",
        f"Chunks       {info.chunks}, {info.compression}",
        f"Percentiles  {', '.join(f'{q:g}' for q in info.percentiles)}",
        "Variables    "
        + ", ".join(
            f"{v.name} ({v.dtype}"
            + (f" x {v.scale_factor:g}" if v.scale_factor not in (None, 1.0) else "")
            + (f" {v.add_offset:+g}" if v.add_offset else "")
            + ")"
            for v in info.variables
        ),
    ]
    if not info.records:
        lines.append(
            "Tiles        no completion records: this store was written in one go (e.g. with "
            "to_zarr), not tile by tile by cubehub, so nothing says whether it is complete"
        )
        lines += [f"  {s.label:<14} {s.start}..{s.end}" for s in info.seasons]
    else:
        lines.append(
            f"Tiles        {info.tiles_total} per season; "
            f"{'all complete' if info.complete else 'NOT all complete'}"
        )
    for s in info.seasons if info.records else ():
        line = f"  {s.label:<14} {s.start}..{s.end}  {s.tiles_complete}/{info.tiles_total} tiles complete"
        if s.incomplete:
            shown = ", ".join(s.incomplete[:LIST_LIMIT])
            more = len(s.incomplete) - LIST_LIMIT
            line += f"; missing {shown}" + (f" and {more} more" if more > 0 else "")
        lines.append(line)
    if info.missing_assets:
        hrefs = {h for tile in info.missing_assets.values() for h in tile}
        tiles = sorted(info.missing_assets)
        more = len(tiles) - LIST_LIMIT
        lines.append(
            f"Missing      {len(hrefs)} asset(s) unreadable when tiles "
            f"{', '.join(tiles[:LIST_LIMIT])}{f' and {more} more' if more > 0 else ''} were "
            "written (counted as nodata); run the job again to retry them"
        )
    p = info.provenance
    lines.append(
        f"Made by      cubehub {p.get('cubehub_version')} from {p.get('source_items')} item(s) of "
        f"{p.get('stac_collection')!r}"
        if p.get("cubehub_version")
        else "Made by      unknown (the store has no cubehub provenance attributes)"
    )
    if info.snapshots:
        lines.append(
            f"Snapshots    {len(info.snapshots)}; latest {info.snapshots[0]['id']}: {info.snapshots[0]['message']}"
        )
    lines.append(f"STAC         {info.stac + '/collection.json' if info.stac else 'none'}")
    return "\n".join(lines)
