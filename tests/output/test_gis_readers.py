"""GIS software opens the default store: GDAL's Zarr driver (the GDAL in the lock, which QGIS
would use) sees each layer's CRS, geotransform, nodata, scale/offset and values."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
import xarray as xr

from cubehub.output.open import open_composite


def gdal_name(url: str, variable: str, *indices: int) -> str:
    """GDAL's name of a 2-D slice of a Zarr array: ``ZARR:"<store>":/<var>:<i>:<j>``."""
    return f'ZARR:"{url}":/{variable}' + "".join(f":{i}" for i in indices)


def test_the_default_store_is_zarr_format_2(partial_store: dict[str, Any]) -> None:
    assert partial_store["job"].zarr_format is None  # no choice made: the Zarr kind's own, 2
    assert (Path(partial_store["url"]) / ".zmetadata").is_file()
    assert not (Path(partial_store["url"]) / "zarr.json").exists()
    with warnings.catch_warnings():  # the root group is no raster, only its subdatasets are
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(f'ZARR:"{partial_store["url"]}"') as root:
            names = {name.rsplit(":", 1)[-1] for name in root.subdatasets}
    assert {"/red", "/nir", "/NDVI", "/valid_count"} <= names


def test_gdal_reads_crs_transform_nodata_scale_and_values(partial_store: dict[str, Any]) -> None:
    url = partial_store["url"]
    stored = xr.open_zarr(url, mask_and_scale=False)
    decoded = open_composite(url, complete_only=False)
    x0 = float(decoded.x[0]) - 5.0
    y1 = float(decoded.y[0]) + 5.0
    seasons = [str(s) for s in decoded.season.values]
    expected = {  # variable -> (nodata, scale, offset, dtype)
        "red": (0.0, 1e-4, -0.1, "uint16"),
        "NDVI": (-32768.0, 1e-4, 0.0, "int16"),
        "valid_count": (65535.0, 1.0, 0.0, "uint16"),
    }
    for name, (nodata, scale, offset, dtype) in expected.items():
        for k in range(len(seasons)):
            index = (k, 1) if name != "valid_count" else (k,)  # percentile 1: p50
            with rasterio.open(gdal_name(url, name, *index)) as src:
                assert src.driver == "Zarr"
                assert src.crs.to_epsg() == 32633
                assert src.transform == rasterio.Affine(10.0, 0.0, x0, 0.0, -10.0, y1)
                assert src.nodata == nodata and src.dtypes[0] == dtype
                assert src.scales[0] == scale and src.offsets[0] == offset
                assert src.units[0] == "1"
                raw = src.read(1)
            np.testing.assert_array_equal(raw, stored[name].values[index])
            # The incomplete tile reads as nodata: its chunks were never written.
            assert (raw[32:, 32:] == nodata).all()
            assert (raw[:32, :32] != nodata).any()
            # GDAL's decoding (raw x scale + offset) is cubehub's.
            ours = decoded[name].values[index][:32, :32]
            theirs = raw[:32, :32] * scale + offset
            valid = raw[:32, :32] != nodata
            np.testing.assert_allclose(theirs[valid], ours[valid], rtol=0, atol=1e-6)
