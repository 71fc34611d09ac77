"""Composites -> Zarr at any fsspec URL, with the metadata a GIS reader needs.

Encoding (documented so colleagues can read the bytes without cubehub):

* reflectance bands: uint16 with CF ``scale_factor``/``add_offset`` equal to the input's
  DN encoding (Sentinel-2: 1e-4 and -0.1), ``_FillValue`` 0; values are rounded to the
  nearest DN, so a stored value is within half a DN (5e-5 reflectance) of the computed one;
* indices: int16 with ``scale_factor`` 1e-4, ``_FillValue`` -32768;
* ``valid_count``: uint16, no fill value;
* compression: Blosc with zstd level 5 and byte shuffle (good on smooth integer rasters);
* CRS: a CF ``spatial_ref`` variable (``crs_wkt``, ``spatial_ref``, ``GeoTransform``)
  named by each variable's ``grid_mapping``, as rioxarray and GDAL expect.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fsspec
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from zarr.codecs import BloscCodec

from cubehub import __version__
from cubehub.errors import InputError, OutputLocationError

_COMPRESSOR = BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")
INDEX_SCALE = 1e-4


def check_writable(url: str, storage_options: Mapping[str, Any] | None = None, *, overwrite: bool = False) -> None:
    """Fail fast, before any compute, when ``url`` cannot take a new store.

    Raises:
        OutputLocationError: the location cannot be written.
        InputError: a store exists there and ``overwrite`` is False.
    """
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if fs.exists(path) and not overwrite:
        raise InputError(f"{url} already exists; choose a new output path or allow overwriting it")
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols:
        parent = Path(path).parent
        while not parent.exists():
            parent = parent.parent
        if not os.access(parent, os.W_OK):
            raise OutputLocationError(f"cannot write {url}: {parent} is not writable; choose another output path")
        return
    probe = f"{path.rstrip('/')}/.cubehub-write-probe"
    try:
        fs.pipe(probe, b"")
        fs.rm(probe)
    except Exception as exc:
        raise OutputLocationError(f"cannot write {url}: {exc}; check the bucket name and credentials") from exc


def encode_composite(ds: xr.Dataset, band_encoding: Mapping[str, tuple[float, float]]) -> xr.Dataset:
    """Attach CF encodings, units, names and the CRS to a composite dataset (lazy).

    Args:
        ds: from :func:`cubehub.composite.seasonal_composite`, with a CRS set via rioxarray.
        band_encoding: per reflectance band, its (scale, offset) DN encoding.
    """
    out = ds.copy()
    for name, var in out.data_vars.items():
        chunks = _chunks(var)
        if name in band_encoding:
            scale, offset = band_encoding[name]
            var.attrs.update(units="1", long_name=f"{name} surface reflectance")
            var.encoding = {"dtype": "uint16", "scale_factor": scale, "add_offset": offset, "_FillValue": 0}
        elif name == "valid_count":
            var.attrs.update(units="1", long_name="number of clear observations in the season")
            var.encoding = {"dtype": "uint16"}
        else:
            var.attrs.update(units="1", long_name=f"{name} spectral index")
            var.encoding = {"dtype": "int16", "scale_factor": INDEX_SCALE, "_FillValue": -32768}
        var.encoding.update(chunks=chunks, compressors=(_COMPRESSOR,))
    out["x"].attrs.update(standard_name="projection_x_coordinate", long_name="x coordinate of pixel centre", units="m")
    out["y"].attrs.update(standard_name="projection_y_coordinate", long_name="y coordinate of pixel centre", units="m")
    out["percentile"].attrs.update(long_name="percentile of clear observations", units="percent")
    out["season"].attrs.update(long_name="season label")
    out["season_start"].attrs.update(long_name="first day of the season window (inclusive, UTC)")
    out["season_end"].attrs.update(long_name="last day of the season window (inclusive, UTC)")
    return out


def _chunks(var: xr.DataArray) -> tuple[int, ...]:
    if var.chunks is None:
        return var.shape
    return tuple(c[0] for c in var.chunks)


def write_zarr(
    ds: xr.Dataset,
    url: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    zarr_format: int = 3,
    overwrite: bool = False,
    compute: bool = True,
) -> Any:
    """Write an encoded composite to ``url`` as Zarr (format 3 by default) with consolidated metadata.

    Returns the dask delayed write when ``compute`` is False, so callers can show progress.
    """
    if zarr_format not in (2, 3):
        raise InputError(f"zarr_format must be 2 or 3, got {zarr_format}")
    return ds.to_zarr(
        url,
        mode="w" if overwrite else "w-",
        zarr_format=zarr_format,
        consolidated=True,
        storage_options=dict(storage_options) if storage_options else None,
        compute=compute,
    )


def provenance_attrs(job: Mapping[str, Any], collection: str, item_ids: list[str]) -> dict[str, str]:
    """Global attributes that say how a store was made."""
    return {
        "title": "cubehub seasonal percentile composite",
        "source": f"cubehub {__version__}",
        "cubehub_version": __version__,
        "cubehub_job": json.dumps(job, sort_keys=True, default=str),
        "stac_collection": collection,
        "stac_item_ids": json.dumps(item_ids),
        "Conventions": "CF-1.8",
    }


def open_composite(url: str, storage_options: Mapping[str, Any] | None = None) -> xr.Dataset:
    """Open a composite store lazily, decoded to reflectance, with its CRS.

    Example:
        >>> ds = open_composite("demo-output/composite.zarr")  # doctest: +SKIP
        >>> ds["nir"].sel(season="2022-summer", percentile=50).plot()  # doctest: +SKIP
    """
    ds = xr.open_zarr(url, storage_options=dict(storage_options) if storage_options else None)
    return ds
