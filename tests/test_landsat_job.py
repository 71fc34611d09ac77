"""A Landsat job that names only the collection: the ODSE product as published, end to end.

Three real Planetary Computer ``landsat-c2-l2`` items (tests/data), served from this machine
the way a stactools catalog is: their links to the Planetary Computer removed, every asset
a small GeoTIFF of known digital numbers on a real HTTP range server. The job gets the
collection profile's defaults (seven ODSE bands at 30 m, the QA_PIXEL mask), and the
thermal band comes out in kelvin.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from pyproj import Transformer
from rasterio.transform import Affine

from cubehub.demo.servers import serve_files
from cubehub.jobspec import job_from_yaml, make_job
from cubehub.maps.style import style_of
from cubehub.pipeline import plan_job, run_job
from realdata import pc_landsat

#: Three acquisitions of WRS 033/032 in the ODSE autumn of 2024 (13 Sep .. 1 Dec).
IDS = (
    "LC08_L2SP_033032_20241111_02_T1",
    "LC09_L2SP_033032_20241119_02_T1",
    "LC08_L2SP_033032_20241127_02_T1",
)
SIDE = 64  # pixels of every file
CLEAR, CLOUD = 21824, 22280  # QA_PIXEL of clear land (bit 6) and of a cloud (bit 3)
#: Thermal DNs of the three dates: 280.0, 290.0 and 300.0 K at 0.00341802 K/DN + 149 K.
KELVIN = (280.0, 290.0, 300.0)
ODSE_BANDS = ("blue", "green", "red", "nir08", "swir16", "swir22", "lwir11")


def _dn(kelvin: float) -> int:
    return round((kelvin - 149.0) / 0.00341802)


def _write(path: Path, data: np.ndarray, transform: Affine, epsg: int) -> None:
    profile = {"driver": "GTiff", "width": SIDE, "height": SIDE, "count": 1, "dtype": "uint16"}
    with rasterio.open(
        path, "w", **profile, crs=f"EPSG:{epsg}", transform=transform, tiled=True
    ) as dst:
        dst.write(data, 1)


@pytest.fixture(scope="module")
def landsat_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """(items.json of the three items, their common grid) with the files served over HTTP."""
    root = tmp_path_factory.mktemp("landsat")
    items = [copy.deepcopy(i) for i in pc_landsat() if i["id"] in IDS]
    assert len(items) == len(IDS)
    # One small window in the middle of the first scene, inside every footprint.
    _, _, x0, _, _, y0 = items[0]["properties"]["proj:transform"][:6]
    with serve_files(root) as files:
        for item in items:
            props = item["properties"]
            epsg = int(props["proj:epsg"])
            transform = Affine(30.0, 0.0, x0 + 3800 * 30, 0.0, -30.0, y0 - 3900 * 30)
            props["proj:shape"], props["proj:transform"] = [SIDE, SIDE], list(transform)[:6]
            day = IDS.index(item["id"])
            for key, asset in item["assets"].items():
                if key == "qa_pixel":
                    data = np.full((SIDE, SIDE), CLEAR, np.uint16)
                    if day == 0:
                        data[:, : SIDE // 2] = CLOUD  # the west half clouded on day 1
                elif key == "lwir11":
                    data = np.full((SIDE, SIDE), _dn(KELVIN[day]), np.uint16)
                elif key in ODSE_BANDS:
                    data = np.full((SIDE, SIDE), 10_000 + 1000 * day, np.uint16)
                else:
                    continue
                name = f"{item['id']}_{key}.tif"
                _write(root / name, data, transform, epsg)
                asset["href"] = f"{files.url}/{name}"
            # Served from elsewhere: no links to the Planetary Computer are left.
            item["links"] = []
        catalog = root / "items.json"
        catalog.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
        xmin, ymax = transform.c, transform.f
        yield catalog, (epsg, (xmin, ymax - SIDE * 30, xmin + SIDE * 30, ymax))


def _lonlat_box(epsg: int, bounds: tuple[float, float, float, float]) -> list[float]:
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    west, south = to_lonlat.transform(bounds[0] + 300, bounds[1] + 300)
    east, north = to_lonlat.transform(bounds[2] - 300, bounds[3] - 300)
    return [west, south, east, north]


def test_a_landsat_job_with_defaults_is_the_odse_product(
    landsat_catalog: tuple[Path, Any], tmp_path: Path, local_client: Any
) -> None:
    catalog, (epsg, bounds) = landsat_catalog
    job = make_job(
        stac_api=str(catalog),
        collections=["landsat-c2-l2"],
        bbox=_lonlat_box(epsg, bounds),
        bounds=bounds,
        years=[2024],
        seasons=["autumn"],
        chunk_size=32,
        tile_size=64,
        output=str(tmp_path / "landsat.zarr"),
    )
    assert job.bands == ODSE_BANDS and job.resolution == 30.0
    assert job.mask.reject_bits == (0, 1, 2, 3, 4) and job.mask.keep_classes is None
    # The stactools-layout items, which used to match "no single known layout".
    plan = plan_job(job)
    assert plan.grid.resolution == 30.0 and len(plan.items) == 3

    run_job(job, local_client, show_progress=False)
    raw = xr.open_zarr(job.output, decode_cf=False)
    store = xr.open_zarr(job.output)
    assert set(ODSE_BANDS) <= set(store.data_vars)
    assert float(abs(store.x[1] - store.x[0])) == 30.0
    thermal = raw["lwir11"].attrs
    assert thermal["units"] == "K" and thermal["long_name"] == "lwir11 surface temperature"
    assert thermal["scale_factor"] == pytest.approx(0.00341802)
    assert thermal["add_offset"] == pytest.approx(149.0)
    assert thermal["cubehub_colormap"] == "inferno"
    assert thermal["cubehub_display_range"] == [250.0, 320.0]  # kelvin, not reflectance
    assert raw["red"].attrs["units"] == "1"
    assert raw["red"].attrs["long_name"] == "red surface reflectance"

    autumn = store.sel(season="2024-autumn")
    east, west = autumn.isel(x=slice(SIDE // 2, None)), autumn.isel(x=slice(None, SIDE // 2))
    # East: all three dates clear, p50 the middle one; west: day 1 clouded (QA bit 3).
    np.testing.assert_allclose(east["lwir11"].sel(percentile=50), 290.0, atol=0.002)
    np.testing.assert_allclose(west["lwir11"].sel(percentile=25), 292.5, atol=0.002)
    assert int(east["valid_count"].min()) == 3 and int(west["valid_count"].max()) == 2
    red_p50 = 11_000 * 2.75e-5 - 0.2  # day 2's DN, as reflectance
    np.testing.assert_allclose(east["red"].sel(percentile=50), red_p50, atol=2e-5)


def test_the_yaml_job_gets_the_same_defaults(landsat_catalog: tuple[Path, Any]) -> None:
    catalog, _ = landsat_catalog
    job = job_from_yaml(
        f"stac_api: {catalog}\ncollections: [landsat-c2-l2]\nbbox: [-105, 40, -104.9, 40.1]\n"
        "years: [2024]\noutput: ls.zarr\n"
    )
    assert job.bands == ODSE_BANDS and job.resolution == 30.0
    assert job.mask.reject_bits == (0, 1, 2, 3, 4)
    assert job.defaults_note().startswith("bands, resolution, mask.reject_bits from profile ")


def test_a_store_without_display_hints_draws_kelvin_as_temperature() -> None:
    style = style_of("lwir11", {"units": "K", "long_name": "lwir11 surface temperature"})
    assert (style.low, style.high, style.units) == (250.0, 320.0, "K")
    assert style_of("red", {"units": "1", "long_name": "red surface reflectance"}).high == 0.4
