"""The ODSE Landsat product as published: a job that names only its collection, bbox and
year runs in EPSG:3035 at 30 m on the Landsat demo archive (resampled from the scenes' UTM
grid) and exports as ODSE-named Cloud Optimized GeoTIFFs that GDAL reads as the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from rasterio.transform import Affine

from cubehub.demo import start_demo
from cubehub.jobspec import make_job
from cubehub.output.cog_names import parse_file_name
from cubehub.output.export import export_cogs
from cubehub.pipeline import run_job

ODSE_BANDS = ("blue", "green", "red", "nir08", "swir16", "swir22", "lwir11")
#: ODSE's seasons of 2022, as the file names write them (first..last day).
SEASONS_2022 = (
    "2021.12.02..2022.03.20",
    "2022.03.21..2022.06.24",
    "2022.06.25..2022.09.12",
    "2022.09.13..2022.12.01",
)


def test_an_odse_year_in_epsg_3035_is_84_named_band_layers_gdal_reads_as_stored(
    tmp_path: Path, local_client: Any
) -> None:
    with start_demo(tmp_path / "archive", collection="landsat-c2-l2", size=32) as demo:
        job = make_job(
            stac_api=demo.stac_api,
            collection="landsat-c2-l2",
            bbox=demo.bbox,
            epsg=3035,
            years=[2022],
            output=str(tmp_path / "eumap-2022.zarr"),
        )
        assert job.bands == ODSE_BANDS and job.resolution == 30.0  # the profile's defaults
        run_job(job, local_client, show_progress=False)

    result = export_cogs(
        job.output, tmp_path / "cogs", product="landsat.glad.ard", area="eumap", version="v1.1"
    )
    names = {path: parse_file_name(path.name) for path in result.files}
    bands = {path: n for path, n in names.items() if n["variable"] in ODSE_BANDS}
    assert len(bands) == 84 == len(ODSE_BANDS) * 3 * 4
    assert {(n["variable"], n["type"], n["time"]) for n in bands.values()} == {
        (b, f"p{q}", t) for b in ODSE_BANDS for q in (25, 50, 75) for t in SEASONS_2022
    }
    green = "lcv_green_landsat.glad.ard_p50_30m_0..0cm_2022.06.25..2022.09.12_eumap_epsg3035_v1.1"
    assert f"{green}.tif" in {p.name for p in bands}

    stored = xr.open_zarr(job.output, mask_and_scale=False)
    x, y = stored.x.values, stored.y.values
    # The store's grid: 30 m pixel edges on multiples of 30 m (EPSG:3035 is not the scenes').
    transform = Affine(30.0, 0.0, x[0] - 15.0, 0.0, -30.0, y[0] + 15.0)
    assert transform.c % 30 == 0 and transform.f % 30 == 0
    for path, name in bands.items():
        with rasterio.open(path) as cog:
            assert cog.crs.to_epsg() == 3035, path.name
            assert cog.transform == transform and cog.shape == (y.size, x.size), path.name
            assert cog.nodata == 0 and cog.dtypes[0] == "uint16", path.name
            assert cog.units[0] == ("K" if name["variable"] == "lwir11" else "1"), path.name
            if name["variable"] == "green" and name["time"] == SEASONS_2022[2]:
                layer = stored["green"].sel(percentile=float(name["type"][1:]))
                np.testing.assert_array_equal(
                    cog.read(1), layer.isel(season=2).values, err_msg=path.name
                )
