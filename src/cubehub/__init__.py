"""cubehub: seasonal percentile composites from STAC to Zarr, on Dask.

The quickstart path, search to Zarr::

    import cubehub

    items = cubehub.search_items("earth-search", collections="sentinel-2-l2a",
                                 bbox=(15.60, 47.00, 15.70, 47.07),
                                 datetime="2021-12-02/2022-12-01")
    cube = cubehub.load_cube(items, ["red", "green", "blue", "nir"],
                             bbox=(15.60, 47.00, 15.70, 47.07))
    composite = cubehub.seasonal_composite(cube, cubehub.odse_quarters([2022]),
                                           indices=["NDVI"])
    composite["NDVI"].sel(percentile=50).plot(col="season")

The cube is plain xarray (one variable per band, CF ``scale_factor``/``add_offset``, the CRS
in ``cube.rio.crs``), and ``seasonal_composite`` takes a cube from ``stackstac.stack`` or
``odc.stac.load`` as well; clouds are masked by the cube's own ``scl``/``qa_pixel`` band.
Or a whole job, tile by tile and resumable: ``cubehub.run_job(cubehub.make_job(...))``
inside ``with cubehub.cluster():``.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("cubehub")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time _EXPORTS imports lazily
    from cubehub.batch import job_manifest
    from cubehub.catalog.items import NormalizedItems, normalize_items
    from cubehub.catalog.search import search_items
    from cubehub.clusters.backends import cluster
    from cubehub.composite import seasonal_composite
    from cubehub.compute.indices import compute_indices
    from cubehub.cube import load_cube
    from cubehub.cube_view import clear_observations
    from cubehub.errors import (
        AssetReadError,
        ClusterError,
        CubehubError,
        CubehubWarning,
        DataError,
        EmptySearchError,
        EmptySeasonWarning,
        ExitCode,
        InputError,
        LocalPathWarning,
        NotFoundError,
        OutputLocationError,
        ServerError,
        StoreMismatchError,
        VersionMismatchError,
    )
    from cubehub.grid import OutputGrid, grid_for_bbox
    from cubehub.jobspec import CompositeJob, load_job, make_job
    from cubehub.output.open import open_composite
    from cubehub.output.quicklook import quicklook_figure, write_quicklook
    from cubehub.pipeline import JobPlan, JobResult, plan_job, prepare_job, run_job
    from cubehub.seasons import (
        SeasonCalendar,
        SeasonWindow,
        calendar_from_name,
        custom_calendar,
        odse_quarters,
    )

#: Public name -> module that defines it. Imported on first use, so ``import cubehub``
#: and the command line start fast. The same names, from the same modules, are imported
#: above for type checkers and listed in ``__all__`` (tests/test_public_api.py checks that
#: the three agree).
_EXPORTS = {
    # functions, in the order of a job: search, cube, composite, store
    "search_items": "cubehub.catalog.search",
    "normalize_items": "cubehub.catalog.items",
    "load_cube": "cubehub.cube",
    "clear_observations": "cubehub.cube_view",
    "grid_for_bbox": "cubehub.grid",
    "seasonal_composite": "cubehub.composite",
    "compute_indices": "cubehub.compute.indices",
    "odse_quarters": "cubehub.seasons",
    "calendar_from_name": "cubehub.seasons",
    "custom_calendar": "cubehub.seasons",
    "make_job": "cubehub.jobspec",
    "load_job": "cubehub.jobspec",
    "plan_job": "cubehub.pipeline",
    "prepare_job": "cubehub.pipeline",
    "run_job": "cubehub.pipeline",
    "job_manifest": "cubehub.batch",
    "cluster": "cubehub.clusters.backends",
    "open_composite": "cubehub.output.open",
    "write_quicklook": "cubehub.output.quicklook",
    "quicklook_figure": "cubehub.output.quicklook",
    # records they take and return
    "NormalizedItems": "cubehub.catalog.items",
    "OutputGrid": "cubehub.grid",
    "SeasonCalendar": "cubehub.seasons",
    "SeasonWindow": "cubehub.seasons",
    "CompositeJob": "cubehub.jobspec",
    "JobPlan": "cubehub.pipeline",
    "JobResult": "cubehub.pipeline",
    # errors: every one is a CubehubError with an exit_code
    "CubehubError": "cubehub.errors",
    "InputError": "cubehub.errors",
    "NotFoundError": "cubehub.errors",
    "OutputLocationError": "cubehub.errors",
    "StoreMismatchError": "cubehub.errors",
    "DataError": "cubehub.errors",
    "EmptySearchError": "cubehub.errors",
    "AssetReadError": "cubehub.errors",
    "ClusterError": "cubehub.errors",
    "VersionMismatchError": "cubehub.errors",
    "ServerError": "cubehub.errors",
    "ExitCode": "cubehub.errors",
    # warnings: something works, but likely not as meant
    "CubehubWarning": "cubehub.errors",
    "EmptySeasonWarning": "cubehub.errors",
    "LocalPathWarning": "cubehub.errors",
}

# Literal, so that type checkers and linters know what is exported.
__all__ = [
    "AssetReadError",
    "ClusterError",
    "CompositeJob",
    "CubehubError",
    "CubehubWarning",
    "DataError",
    "EmptySearchError",
    "EmptySeasonWarning",
    "ExitCode",
    "InputError",
    "JobPlan",
    "JobResult",
    "LocalPathWarning",
    "NormalizedItems",
    "NotFoundError",
    "OutputGrid",
    "OutputLocationError",
    "SeasonCalendar",
    "SeasonWindow",
    "ServerError",
    "StoreMismatchError",
    "VersionMismatchError",
    "__version__",
    "calendar_from_name",
    "clear_observations",
    "cluster",
    "compute_indices",
    "custom_calendar",
    "grid_for_bbox",
    "job_manifest",
    "load_cube",
    "load_job",
    "make_job",
    "normalize_items",
    "odse_quarters",
    "open_composite",
    "plan_job",
    "prepare_job",
    "quicklook_figure",
    "run_job",
    "search_items",
    "seasonal_composite",
    "write_quicklook",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cubehub' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
