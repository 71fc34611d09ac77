"""A synthetic Sentinel-2 L2A archive with known truth, laid out like Earth Search v1.

:func:`build_archive` writes one ODSE year of acquisitions over a window of MGRS tile 33TWN
(EPSG:32633) as Cloud-Optimized GeoTIFFs plus STAC item JSON, in the folder layout of the
``sentinel-cogs`` bucket, and the cloud-free truth next to them. The archive carries the
traps a real one has, so the pipeline is tested on them:

* clouds (SCL 8/9), thin cirrus (SCL 10) and cloud shadows (SCL 3) in the files;
* a swath edge: relative orbit 79 sees only the western part of the window, the rest is 0;
* processing baseline 04.00 from 2022-01-25: ``raster:bands`` say ``offset: -0.1``; most such
  items have ``earthsearch:boa_offset_applied: true`` (DN = reflectance x 10 000, the offset
  already removed), a few say ``false`` and their DN carry the +1000;
* one acquisition twice, as ``_0_`` and as a later ``_1_`` reprocessing; the ``_0_`` has a
  +300 DN calibration error, the ``_1_`` is the truth;
* ``proj:code`` (projection extension v2) and no ``proj:epsg``.

The plan and the items are :mod:`cubehub.demo.sentinel2_plan`'s, the pixels
:mod:`cubehub.demo.sentinel2_scene`'s (on the nature of :mod:`cubehub.demo.scene`), the files
are written through :mod:`cubehub.demo.archive_io`; this module writes the archive and reads
it back. One date is synthesised and written at a time, so memory stays bounded at any size.
The Landsat Collection 2 archive is :mod:`cubehub.demo.landsat`.
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

from cubehub.demo import scene
from cubehub.demo import sentinel2_scene as s2
from cubehub.demo.archive_io import (
    MANIFEST_NAME,
    TRUTH_NAME,
    Raster,
    StoredArchive,
    TruthWriter,
    build_once,
    iso,
    write_item,
    write_manifest,
)
from cubehub.demo.sentinel2_plan import (
    ARCHIVE_FORMAT,
    BANDS,
    COLLECTION_ID,
    EPSG,
    MAX_SIZE,
    RESOLUTION,
    SCL_FILE,
    STREAM_LAND,
    STREAM_SKY,
    STREAM_SURFACE,
    SWATH_EDGE,
    ArchiveSpec,
    footprint_geometry,
    item_json,
    plan_acquisitions,
    window_origin,
)
from cubehub.errors import InputError

__all__ = ["MANIFEST_NAME", "MAX_SIZE", "TRUTH_NAME", "Archive", "ArchiveSpec", "build_archive"]


def _write(archive: Archive, progress: Callable[[int, int], None] | None) -> None:
    """Synthesise and write every item, date by date, then the truth and the manifest."""
    spec, root = archive.spec, archive.root
    plan = plan_acquisitions(spec)
    total = sum(len(acq.products) for acq in plan)
    half = spec.size // 2
    x0, y1 = window_origin(spec.size)
    transforms = {  # by raster height: 10 m and 20 m grids
        spec.size: Affine(RESOLUTION, 0.0, x0, 0.0, -RESOLUTION, y1),
        half: Affine(2 * RESOLUTION, 0.0, x0, 0.0, -2 * RESOLUTION, y1),
    }
    swath = scene.swath_valid((half, half), *SWATH_EDGE)
    footprints = {partial: footprint_geometry(spec, partial) for partial in (False, True)}
    land_seed = spec.seed if spec.land_seed is None else spec.land_seed
    land = scene.make_landscape(spec.size, np.random.default_rng([land_seed, STREAM_LAND]))
    truth = TruthWriter(
        root / TRUTH_NAME,
        len(plan),
        {
            name: ((side, side), "uint8" if name == "scl" else "uint16")
            for name in (*scene.REFLECTANCE_BANDS, "scl")
            for side in [spec.size if name in s2.BANDS_10M else half]
        },
        {
            "time": [iso(acq.datetime).rstrip("Z") for acq in plan],
            "item_ids": [acq.products[-1].id for acq in plan],
            "dropped_item_ids": [p.id for acq in plan for p in acq.products[:-1]],
        },
    )
    truth.write_static("landcover", land.landcover)

    files: list[str] = []
    done = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        for acq in plan:
            doy = acq.datetime.timetuple().tm_yday
            surface = s2.surface_dn(
                land, doy, np.random.default_rng([spec.seed, STREAM_SURFACE, acq.index])
            )
            valid = swath if acq.partial else None
            sky = scene.make_sky(
                (half, half),
                acq.cloud_fraction,
                np.random.default_rng([spec.seed, STREAM_SKY, acq.index]),
                valid,
            )
            scl = s2.scene_classification(land, doy, sky, valid)
            truth.add({**surface, "scl": scl})
            for product in acq.products:
                recorded = s2.observe(surface, sky, valid, product.dn_add)
                item = item_json(spec, acq, product, scl, footprints[acq.partial])
                rasters = [
                    Raster(BANDS[band].file, dn, transforms[dn.shape[0]])
                    for band, dn in recorded.items()
                ]
                rasters.append(Raster(SCL_FILE, scl, transforms[half], categorical=True))
                files += write_item(pool, root, product.rel_dir, item, rasters, EPSG)
                done += 1
                if progress is not None:
                    progress(done, total)
    truth.flush()

    items = [f"{p.rel_dir}/{p.id}.json" for acq in plan for p in acq.products]
    write_manifest(root, ARCHIVE_FORMAT, spec, items, files)


# --- the archive ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive(StoredArchive):
    """A built archive under ``root``; get one from :func:`build_archive`. Its items are in
    the Earth Search v1 layout (:meth:`item_dicts`)."""

    root: Path
    spec: ArchiveSpec
    archive_format = ARCHIVE_FORMAT

    @property
    def epsg(self) -> int:
        """EPSG code of the grid (UTM zone 33N)."""
        return EPSG

    @property
    def resolution(self) -> float:
        """Pixel size of the 10 m assets and of the truth grid, metres."""
        return RESOLUTION

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Window (x0, y0, x1, y1) in metres, EPSG:32633."""
        x0, y1 = window_origin(self.spec.size)
        side = self.spec.size * RESOLUTION
        return (x0, y1 - side, x0 + side, y1)

    def collection_dict(self) -> dict[str, Any]:
        """The ``sentinel-2-l2a`` STAC Collection, its extent taken from the items."""
        return {
            "type": "Collection",
            "id": COLLECTION_ID,
            "stac_version": "1.0.0",
            "stac_extensions": [],
            "title": "Sentinel-2 Level-2A (synthetic, cubehub demo)",
            "description": (
                "Synthetic Sentinel-2 L2A surface reflectance over MGRS tile 33TWN, laid out "
                "like Earth Search v1; built by cubehub.demo.archive."
            ),
            "license": "proprietary",
            "extent": self.extent(),
            "summaries": {
                "platform": self.platforms(),
                "constellation": ["sentinel-2"],
                "instruments": ["msi"],
                "gsd": [RESOLUTION, 2 * RESOLUTION],
            },
            "links": [],
        }

    def truth(self) -> xr.Dataset:
        """The cloud-free truth, lazily (dask) from the Zarr written at build time.

        Dims (time, y, x) on the 10 m grid, x/y pixel centres in EPSG:32633. Variables:
        ``blue green red nir swir16 swir22`` true surface reflectance (float64, multiples of
        1e-4, > 0; 20 m bands repeated 2 x 2), ``scl`` (uint8, the kept item's SCL repeated
        2 x 2), ``clear`` (SCL 4, 5 or 6: clear land or water inside the swath),
        ``landcover`` (y, x; codes in its ``flag_values``/``flag_meanings``). ``time`` holds one
        acquisition per solar day (UTC-naive); attrs ``item_ids`` name the item kept for each
        time and ``dropped_item_ids`` the duplicates it replaces. Call ``.load()`` on small
        archives.
        """
        self._manifest()  # a clear error if the build never finished
        group = zarr.open_group(self.root / TRUTH_NAME, mode="r")
        attrs = dict(group.attrs)
        x0, y1 = window_origin(self.spec.size)
        centres = (np.arange(self.spec.size) + 0.5) * RESOLUTION
        coords = {
            "time": np.array(attrs["time"], dtype="datetime64[ns]"),
            "y": y1 - centres,
            "x": x0 + centres,
        }

        def on_10m(name: str) -> da.Array:
            array = da.from_zarr(group[name])
            if array.shape[-1] != self.spec.size:
                array = array.repeat(2, axis=-2).repeat(2, axis=-1)
            return array

        dims = ("time", "y", "x")
        data_vars: dict[str, Any] = {
            band: (
                dims,
                on_10m(band) / 10_000.0,
                {"units": "1", "long_name": f"{band} reflectance"},
            )
            for band in scene.REFLECTANCE_BANDS
        }
        scl = on_10m("scl")
        data_vars["scl"] = (dims, scl, {"long_name": "Sentinel-2 scene classification"})
        data_vars["clear"] = (dims, da.isin(scl, s2.CLEAR_SCL))
        data_vars["landcover"] = (("y", "x"), on_10m("landcover"), scene.landcover_flags())
        return xr.Dataset(
            data_vars,
            coords=coords,
            attrs={"item_ids": attrs["item_ids"], "dropped_item_ids": attrs["dropped_item_ids"]},
        )


_DEFAULT_SPEC = ArchiveSpec()


def build_archive(
    root: Path,
    spec: ArchiveSpec = _DEFAULT_SPEC,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Archive:
    """Build the synthetic archive into ``root``, or return it if already built.

    Idempotent: when ``root`` holds a complete archive (its manifest, written last, exists
    and names the same spec, and every file it lists is there) nothing is rewritten.
    Otherwise whatever an earlier build left is removed and the archive is written again.
    ``progress(done, total)`` is called after each item is written. Takes about 3 s for the
    default spec on 2 cores.
    """
    if not isinstance(spec, ArchiveSpec):
        raise InputError(f"spec must be an ArchiveSpec, got {type(spec).__name__}")
    archive = Archive(Path(root), spec)
    return build_once(archive, ["sentinel-s2-l2a-cogs"], lambda: _write(archive, progress))
