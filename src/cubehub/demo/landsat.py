"""A synthetic Landsat Collection 2 Level-2 archive with known truth (``landsat-c2-l2``).

:func:`build_landsat_archive` writes one ODSE year of Landsat 5 TM, 7 ETM+, 8 and 9
OLI/TIRS scenes over a window east of Graz (UTM 33N, EPSG:32633, 30 m, on the native
Landsat grid: pixel edges at 15 m modulo 30 m) as Cloud-Optimized GeoTIFFs in the
``usgs-landsat`` bucket's folder layout, their STAC items in the Earth Search v1 or the
Planetary Computer layout, and the clear-sky truth next to them. The traps of a real
Landsat archive are in it (plan: :mod:`cubehub.demo.landsat_plan`, pixels:
:mod:`cubehub.demo.landsat_scene`):

* QA_PIXEL fill, dilated cloud, cirrus (OLI only), cloud, cloud shadow, snow, clear and
  water bits, with CFMask's confidence fields;
* Landsat 7 SLC-off stripes after 2003-05-31: 0 in the bands, fill in QA_PIXEL, missing in
  the truth (never 0);
* scaled DNs: reflectance = DN x 2.75e-5 - 0.2, surface temperature (``lwir11``; ``lwir``
  on TM/ETM+ items) in kelvin = DN x 0.00341802 + 149.0;
* the sidelap of WRS-2 paths 189 and 190 (the window's east seen on more days), and the
  overlap of path 190's rows 027 and 028 (the middle seen twice on the same day: one
  observation).

One overpass is synthesised and written at a time, so memory stays bounded at any size.
Several ODSE years are several archives sharing ``LandsatSpec.land_seed``, as for
Sentinel-2: ``start_demo(collection="landsat-c2-l2", years=[2021, 2022, 2023])``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from rasterio.transform import Affine

from cubehub.demo import landsat_scene as ls
from cubehub.demo import scene
from cubehub.demo.archive_io import (
    TRUTH_NAME,
    Raster,
    StoredArchive,
    TruthWriter,
    build_once,
    iso,
    write_item,
    write_manifest,
)
from cubehub.demo.landsat_plan import (
    COLLECTION_ID,
    EPSG,
    PATH_189_EDGE,
    RESOLUTION,
    ROW_SPLIT,
    ROWS,
    STREAM_LAND,
    STREAM_SKY,
    STREAM_SURFACE,
    LandsatSpec,
    file_name,
    item_json,
    plan_overpasses,
    rel_dir,
    window_origin,
)
from cubehub.errors import InputError

__all__ = ["LandsatArchive", "LandsatSpec", "build_landsat_archive"]

#: Bump when the synthesis or the layout changes, so that cached archives are rebuilt.
ARCHIVE_FORMAT = 1
_FOLDER = "collection02"


def _row_masks(size: int) -> dict[tuple[int, int], np.ndarray]:
    """(path, row) -> the window pixels the scene covers, as its footprint polygon says."""
    centre = (np.arange(size) + 0.5) / size
    ends, begins = ROW_SPLIT
    north = np.broadcast_to((centre < ends)[:, None], (size, size))
    south = np.broadcast_to((centre > begins)[:, None], (size, size))
    east = ~scene.swath_valid((size, size), *PATH_189_EDGE)
    return {(190, ROWS[190][0]): north, (190, ROWS[190][1]): south, (189, ROWS[189][0]): east}


def _cloud_cover(qa: np.ndarray) -> float:
    """``eo:cloud_cover``: percent of the scene's pixels with cloud, cirrus or shadow bits."""
    valid = qa != ls.QA_FILL
    cloudy = (qa & 0b11100) != 0
    return round(100.0 * float(cloudy[valid].sum()) / max(int(valid.sum()), 1), 2)


def _write(archive: LandsatArchive, progress: Callable[[int, int], None] | None) -> None:
    """Synthesise and write every scene, overpass by overpass, then the truth and manifest."""
    spec, root = archive.spec, archive.root
    plan = plan_overpasses(spec)
    total = sum(len(op.scenes) for op in plan)
    n = spec.size
    x0, y1 = window_origin()
    transform = Affine(RESOLUTION, 0.0, x0, 0.0, -RESOLUTION, y1)
    masks = _row_masks(n)
    land_seed = spec.seed if spec.land_seed is None else spec.land_seed
    # The landscape's coarse grid (half of 2n) is the 30 m grid.
    land = scene.make_landscape(2 * n, np.random.default_rng([land_seed, STREAM_LAND]))
    truth = TruthWriter(
        root / TRUTH_NAME,
        len(plan),
        {name: ((n, n), "uint16") for name in (*ls.BANDS, "qa_pixel")} | {"clear": ((n, n), "u1")},
        {
            "time": [iso(op.datetime).rstrip("Z") for op in plan],
            "item_ids": [",".join(s.id for s in op.scenes) for op in plan],
            "platform": [op.platform for op in plan],
        },
    )
    truth.write_static("landcover", land.landcover)

    files: list[str] = []
    items: list[str] = []
    done = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        for op in plan:
            doy = op.day.timetuple().tm_yday
            rng = np.random.default_rng([spec.seed, STREAM_SURFACE, op.index])
            ground = ls.surface(land, doy, op.snow_fraction, rng)
            swath = np.logical_or.reduce([masks[(op.path, r)] for r in ROWS[op.path]])
            if op.slc_gap_px:
                swath = swath & ls.slc_off_valid((n, n), op.slc_gap_px, op.slc_phase)
            sky = ls.sensor_sky(
                scene.make_sky(
                    (n, n),
                    op.cloud_fraction,
                    np.random.default_rng([spec.seed, STREAM_SKY, op.index]),
                    swath,
                ),
                op.oli,
            )
            qa = ls.qa_pixel(sky, ground, op.oli, swath)
            truth.add({**ground.dn, "qa_pixel": qa, "clear": ls.sky_clear(sky, swath).astype("u1")})
            for s in op.scenes:
                valid = swath & masks[(op.path, s.row)]
                recorded = ls.observe(ground, sky, valid)
                scene_qa = np.where(valid, qa, ls.QA_FILL).astype(np.uint16)
                item = item_json(spec, op, s, _cloud_cover(scene_qa))
                rasters = [
                    Raster(f"{s.product_id}_{file_name(op.platform, b)}", dn, transform)
                    for b, dn in recorded.items()
                ]
                rasters.append(
                    Raster(
                        f"{s.product_id}_QA_PIXEL",
                        scene_qa,
                        transform,
                        categorical=True,
                        nodata=ls.QA_FILL,
                    )
                )
                folder = rel_dir(op.platform, s)
                files += write_item(pool, root, folder, item, rasters, EPSG, suffix=".TIF")
                items.append(f"{folder}/{s.id}.json")
                done += 1
                if progress is not None:
                    progress(done, total)
    truth.flush()
    write_manifest(root, ARCHIVE_FORMAT, spec, items, files)


@dataclass(frozen=True)
class LandsatArchive(StoredArchive):
    """A built Landsat archive under ``root``; get one from :func:`build_landsat_archive`."""

    root: Path
    spec: LandsatSpec
    archive_format = ARCHIVE_FORMAT

    @property
    def epsg(self) -> int:
        """EPSG code of the grid (UTM zone 33N)."""
        return EPSG

    @property
    def resolution(self) -> float:
        """Pixel size of every band and of the truth grid, metres (30)."""
        return RESOLUTION

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Window (x0, y0, x1, y1) in metres, EPSG:32633, on the native Landsat grid
        (edges at 15 m modulo 30 m): a job on these bounds reads pixels without resampling."""
        x0, y1 = window_origin()
        side = self.spec.size * RESOLUTION
        return (x0, y1 - side, x0 + side, y1)

    def collection_dict(self) -> dict[str, Any]:
        """The ``landsat-c2-l2`` STAC Collection, its extent taken from the items."""
        return {
            "type": "Collection",
            "id": COLLECTION_ID,
            "stac_version": "1.0.0",
            "stac_extensions": [],
            "title": "Landsat Collection 2 Level-2 (synthetic, cubehub demo)",
            "description": (
                "Synthetic Landsat 5/7/8/9 Collection 2 Level-2 surface reflectance and "
                f"temperature, laid out like {self.spec.layout}; built by cubehub.demo.landsat."
            ),
            "license": "proprietary",
            "extent": self.extent(),
            "summaries": {
                "platform": self.platforms(),
                "constellation": ["landsat"],
                "gsd": [RESOLUTION],
            },
            "links": [],
        }

    def truth(self) -> xr.Dataset:
        """The clear-sky truth, lazily (dask) from the Zarr written at build time.

        Dims (time, y, x) on the 30 m grid, x/y pixel centres in EPSG:32633, one time per
        overpass (its rows' items merged: ``item_ids`` attrs, comma-separated). Variables:
        ``blue green red nir08 swir16 swir22`` surface reflectance (float64, DN x 2.75e-5 -
        0.2 exactly), ``lwir11`` surface temperature in kelvin (DN x 0.00341802 + 149),
        ``qa_pixel`` (uint16, the overpass's QA_PIXEL, 1 where it saw nothing),
        ``clear`` (recorded and under no cloud, fringe, shadow or cirrus; snow is clear;
        SLC-off gaps and pixels outside the swath are not) and ``landcover`` (y, x).
        """
        self._manifest()  # a clear error if the build never finished
        group = zarr.open_group(self.root / TRUTH_NAME, mode="r")
        attrs = dict(group.attrs)
        x0, _, _, y1 = self.bounds
        centres = (np.arange(self.spec.size) + 0.5) * RESOLUTION
        coords = {
            "time": np.array(attrs["time"], dtype="datetime64[ns]"),
            "y": y1 - centres,
            "x": x0 + centres,
        }
        dims = ("time", "y", "x")
        data_vars: dict[str, Any] = {
            band: (
                dims,
                da.from_zarr(group[band]) * ls.SR_SCALE + ls.SR_OFFSET,
                {"units": "1", "long_name": f"{band} surface reflectance"},
            )
            for band in ls.SR_BANDS
        }
        data_vars[ls.THERMAL_BAND] = (
            dims,
            da.from_zarr(group[ls.THERMAL_BAND]) * ls.ST_SCALE + ls.ST_OFFSET,
            {"units": "K", "long_name": "surface temperature"},
        )
        data_vars["qa_pixel"] = (dims, da.from_zarr(group["qa_pixel"]))
        data_vars["clear"] = (dims, da.from_zarr(group["clear"]).astype(bool))
        landcover = da.from_zarr(group["landcover"])
        data_vars["landcover"] = (("y", "x"), landcover, scene.landcover_flags())
        return xr.Dataset(
            data_vars,
            coords=coords,
            attrs={"item_ids": attrs["item_ids"], "platform": attrs["platform"]},
        )


_DEFAULT_SPEC = LandsatSpec()


def build_landsat_archive(
    root: Path,
    spec: LandsatSpec = _DEFAULT_SPEC,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> LandsatArchive:
    """Build the synthetic Landsat archive into ``root``, or return it if already built.

    Idempotent like :func:`cubehub.demo.archive.build_archive`: a complete archive of the
    same spec is reused, anything else under ``root`` that an earlier build left is removed
    first. ``progress(done, total)`` is called after each item is written.
    """
    if not isinstance(spec, LandsatSpec):
        raise InputError(f"spec must be a LandsatSpec, got {type(spec).__name__}")
    archive = LandsatArchive(Path(root), spec)
    return build_once(archive, [_FOLDER], lambda: _write(archive, progress))
