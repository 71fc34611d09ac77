"""cubehub: seasonal percentile composites from STAC to Zarr, on Dask.

The quickstart path, search to Zarr::

    import cubehub

    items = cubehub.search_items("earth-search", collections=["sentinel-2-l2a"],
                                 bbox=(15.60, 47.00, 15.70, 47.07),
                                 datetime="2021-12-02/2022-12-01")
    cube = cubehub.load_cube(items, ["red", "green", "blue", "nir"],
                             bbox=(15.60, 47.00, 15.70, 47.07))
    composite = cubehub.seasonal_composite(cube, cubehub.odse_quarters([2022]),
                                           clear=cube.clear(), indices=["NDVI"])
    composite["NDVI"].sel(percentile=50).plot(col="season")

Or a whole job, tile by tile and resumable: ``cubehub.run_job(cubehub.make_job(...), client)``
inside ``with cubehub.cluster() as client:``.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("cubehub")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

#: Public name -> module that defines it. Imported on first use, so ``import cubehub``
#: and the command line start fast.
_EXPORTS = {
    "search_items": "cubehub.search",
    "normalize_items": "cubehub.items",
    "load_cube": "cubehub.cube",
    "grid_for_bbox": "cubehub.cube",
    "seasonal_composite": "cubehub.composite",
    "compute_indices": "cubehub.compute.indices",
    "odse_quarters": "cubehub.seasons",
    "calendar_from_name": "cubehub.seasons",
    "custom_calendar": "cubehub.seasons",
    "make_job": "cubehub.jobspec",
    "load_job": "cubehub.jobspec",
    "plan_job": "cubehub.pipeline",
    "run_job": "cubehub.pipeline",
    "cluster": "cubehub.clusters",
    "open_composite": "cubehub.store",
    "write_quicklook": "cubehub.quicklook",
    "quicklook_figure": "cubehub.quicklook",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cubehub' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
