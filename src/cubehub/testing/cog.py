"""Is a file a valid Cloud Optimized GeoTIFF? GDAL's own checks, through rasterio.

rio-cogeo is not in the environment and GDAL's Python bindings (``osgeo_utils``) are not
either, so :func:`cog_problems` applies the checks of GDAL's
``validate_cloud_optimized_geotiff.py`` (the COG driver's authors' definition) with the
TIFF metadata GDAL exposes to rasterio (``IFD_OFFSET``, ``BLOCK_OFFSET_x_y`` in the
``TIFF`` domain):

* a GeoTIFF, tiled (in every overview too) when larger than 512 px;
* internal overviews when larger than 512 px (GDAL: a warning; here a problem when asked);
* the main image's IFD first, then the overviews' IFDs, largest to smallest;
* the image data after the IFDs, the smallest overview's data first and the main image's
  last (a reader of a low zoom level fetches the start of the file only);
* GDAL's ghost header (``LAYOUT=COG`` in the ``IMAGE_STRUCTURE`` metadata), which says
  the layout was written by the COG driver and can be trusted by readers.
"""

from __future__ import annotations

from pathlib import Path

import rasterio

__all__ = ["cog_problems"]


def cog_problems(path: str | Path, *, require_overviews: bool = False) -> list[str]:
    """What makes ``path`` not a COG; ``[]`` for a valid one."""
    problems: list[str] = []
    with rasterio.open(path) as src:
        if src.driver != "GTiff":
            return [f"driver is {src.driver}, not GTiff"]
        overviews = src.overviews(1)
        big = src.width > 512 or src.height > 512
        _, block_w = src.block_shapes[0]
        if big and block_w == src.width and src.width > 512:
            problems.append("the main image is not tiled")
        if (big or require_overviews) and not overviews:
            problems.append("no internal overviews")
        if src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG":
            problems.append("no COG ghost header (LAYOUT=COG): not written by GDAL's COG driver")
        main_ifd = int(src.get_tag_item("IFD_OFFSET", "TIFF", bidx=1) or 0)
        ovr_ifds = [
            int(src.get_tag_item("IFD_OFFSET", "TIFF", bidx=1, ovr=k) or 0)
            for k in range(len(overviews))
        ]
        if ovr_ifds and main_ifd > min(ovr_ifds):
            problems.append("the main image's IFD is not before the overviews' IFDs")
        if ovr_ifds != sorted(ovr_ifds):
            problems.append("the overviews' IFDs are not ordered largest to smallest")
        first_blocks = [_block_offset(src, None)] + [
            _block_offset(src, k) for k in range(len(overviews))
        ]
        if any(offset < max([main_ifd, *ovr_ifds]) for offset in first_blocks if offset):
            problems.append("image data comes before the last IFD")
        # Data of smaller overviews first: first-block offsets decrease with the level.
        if first_blocks != sorted(first_blocks, reverse=True):
            problems.append("image data is not ordered smallest overview first, main image last")
        for k in range(len(overviews)):
            with rasterio.open(path, overview_level=k) as ovr:
                _, w = ovr.block_shapes[0]
                if ovr.width > 512 and w == ovr.width:
                    problems.append(f"overview {k} is not tiled")
    return problems


def _block_offset(src: rasterio.io.DatasetReader, ovr: int | None) -> int:
    value = src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1, ovr=ovr)
    return int(value or 0)
