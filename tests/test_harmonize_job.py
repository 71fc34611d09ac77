"""``harmonize: roy2016`` end to end: a Landsat 7 and a Landsat 8 scene (tiny COGs in Earth
Search's landsat-c2-l2 layout, served over HTTP, found through a real STAC API), composited
on a local Dask cluster into a Zarr store: the ETM+ season holds the formula applied to the
truth, the OLI season the truth itself, the store says it was harmonised, and a job
without harmonisation cannot extend it."""

from __future__ import annotations

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

from cubehub.compute.harmonize import ROY2016_ETM_TO_OLI, harmonize_dn
from cubehub.demo.servers import serve_files, serve_stac_api
from cubehub.errors import StoreMismatchError
from cubehub.jobspec import make_job
from cubehub.pipeline import plan_job, prepare_job, run_job, tile_composite
from cubehub.testing.catalog import box_item

EPSG, SIZE, RES = 32633, 64, 30.0
X0, Y1 = 500_010.0, 5_300_010.0  # upper-left corner, on the 30 m grid
SCALE, OFFSET = 2.75e-5, -0.2  # Landsat Collection 2 Level-2 surface reflectance
BANDS = tuple(ROY2016_ETM_TO_OLI)  # blue green red nir08 swir16 swir22
CLEAR = 21824  # QA_PIXEL of clear land with low confidences (bit 6 clear, no cloud bits)
SCENES = {
    # id, platform, acquisition: one ETM+ scene in spring, one OLI scene in summer.
    "LE07_L2SP_190027_20200415_02_T1": ("landsat-7", "2020-04-15T09:40:00Z"),
    "LC08_L2SP_190027_20200720_02_T1": ("landsat-8", "2020-07-20T09:45:00Z"),
}


def _truth(k: int) -> dict[str, np.ndarray]:
    """DNs of scene ``k``: a smooth field per band over 0.02..0.40 reflectance."""
    rng = np.random.default_rng(k)
    out = {}
    for j, band in enumerate(BANDS):
        reflectance = rng.uniform(0.02 + 0.01 * j, 0.40, (SIZE, SIZE))
        out[band] = np.round((reflectance - OFFSET) / SCALE).astype(np.uint16)
    return out


def _write_cog(path: Path, data: np.ndarray) -> None:
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=SIZE,
        height=SIZE,
        count=1,
        dtype=data.dtype,
        crs=f"EPSG:{EPSG}",
        transform=Affine(RES, 0.0, X0, 0.0, -RES, Y1),
        nodata=0,
        compress="DEFLATE",
    ) as dst:
        dst.write(data, 1)


def _lonlat_box() -> list[float]:
    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    xs, ys = [X0, X0 + SIZE * RES] * 2, [Y1, Y1, Y1 - SIZE * RES, Y1 - SIZE * RES]
    lons, lats = to_lonlat.transform(xs, ys)
    return [min(lons), min(lats), max(lons), max(lats)]


def _item(item_id: str, platform: str, when: str, base_url: str) -> dict[str, Any]:
    """An item as Earth Search v1 ``landsat-c2-l2`` publishes it (keys, raster:bands, proj:)."""
    west, south, east, north = _lonlat_box()

    def asset(key: str, raster: dict[str, Any], roles: list[str]) -> dict[str, Any]:
        return {
            "href": f"{base_url}/{item_id}/{key}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "raster:bands": [{"data_type": "uint16", "spatial_resolution": 30, **raster}],
            "roles": roles,
        }

    assets = {
        b: asset(b, {"nodata": 0, "scale": SCALE, "offset": OFFSET}, ["data", "reflectance"])
        for b in BANDS
    }
    assets["qa_pixel"] = asset("qa_pixel", {"nodata": 1, "unit": "bit index"}, ["cloud"])
    properties = {
        "datetime": when,
        "platform": platform,
        "instruments": ["etm+"] if platform == "landsat-7" else ["oli", "tirs"],
        "eo:cloud_cover": 0.0,
        "proj:epsg": EPSG,
        "proj:shape": [SIZE, SIZE],
        "proj:transform": [RES, 0.0, X0, 0.0, -RES, Y1],
        "landsat:wrs_path": "190",
        "landsat:wrs_row": "027",
        "earthsearch:payload_id": f"usgs-landsat-c2l2/workflow-landsat-to-stac/{item_id}",
    }
    return box_item(item_id, "landsat-c2-l2", (west, south, east, north), properties, assets)


@pytest.fixture(scope="module")
def landsat_api(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, list[dict[str, np.ndarray]]]]:
    root = tmp_path_factory.mktemp("landsat-cogs")
    truths = []
    for k, item_id in enumerate(SCENES):
        (root / item_id).mkdir()
        truth = _truth(k)
        truths.append(truth)
        for band, dn in truth.items():
            _write_cog(root / item_id / f"{band}.tif", dn)
        _write_cog(root / item_id / "qa_pixel.tif", np.full((SIZE, SIZE), CLEAR, np.uint16))
    with serve_files(root) as files:
        items = [_item(i, p, w, files.url) for i, (p, w) in SCENES.items()]
        path = root / "items.json"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
        with serve_stac_api(path) as api:
            yield api.url, truths


def _job(api: str, output: Path, **extra: Any) -> Any:
    return make_job(
        stac_api=api,
        collection="landsat-c2-l2",
        bbox=_lonlat_box(),
        epsg=EPSG,
        resolution=RES,
        bounds=(X0, Y1 - SIZE * RES, X0 + SIZE * RES, Y1),
        years=[2020],
        seasons=["spring", "summer"],
        bands=BANDS,
        indices=(),
        chunk_size=32,
        tile_size=64,
        output=str(output),
        **extra,
    )


def test_etm_season_is_the_formula_applied_to_the_truth_oli_season_the_truth(
    landsat_api: Any, local_client: Any, tmp_path: Path
) -> None:
    api, (etm_truth, oli_truth) = landsat_api
    output = tmp_path / "harmonised.zarr"
    result = run_job(_job(api, output, harmonize="roy2016"), local_client, show_progress=False)
    assert result.items_found == 2

    stored = xr.open_zarr(output, mask_and_scale=False)
    for band in BANDS:
        expected = harmonize_dn(etm_truth[band], band, SCALE, OFFSET)
        assert not np.array_equal(expected, etm_truth[band])  # the formula changes the DNs
        for q in (25.0, 50.0, 75.0):  # one observation a season: every percentile is it
            spring = stored[band].sel(season="2020-spring", percentile=q).values
            summer = stored[band].sel(season="2020-summer", percentile=q).values
            np.testing.assert_array_equal(spring, expected, err_msg=f"{band} p{q:g} spring")
            np.testing.assert_array_equal(summer, oli_truth[band], err_msg=f"{band} p{q:g} summer")

    # The provenance says so, and a job without harmonisation may not extend the store.
    assert stored.attrs["cubehub_harmonize"] == "roy2016"
    assert json.loads(stored.attrs["cubehub_job"])["harmonize"] == "roy2016"
    with pytest.raises(
        StoreMismatchError,
        match=r"job parameter harmonize is 'roy2016' in the store, None in the job",
    ):
        prepare_job(_job(api, output))


def test_without_harmonize_the_etm_season_is_the_truth(landsat_api: Any, tmp_path: Path) -> None:
    # The same job with harmonisation off (its one tile computed here, synchronously)
    # leaves the ETM+ DNs as the files hold them.
    api, (etm_truth, _) = landsat_api
    plan = plan_job(_job(api, tmp_path / "raw.zarr"))
    ds = tile_composite(plan, plan.tiles[0]).compute(scheduler="synchronous")
    assert "cubehub_harmonize" not in ds.attrs
    for band in BANDS:
        spring = ds[band].sel(season="2020-spring", percentile=50.0).values
        np.testing.assert_allclose(spring, etm_truth[band] * SCALE + OFFSET, atol=SCALE / 2)
