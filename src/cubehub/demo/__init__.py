"""Product code of the demo: synthetic Sentinel-2 and Landsat archives with known truth
(:mod:`cubehub.demo.archive`, :mod:`cubehub.demo.landsat`), the servers that serve them on
loopback (HTTP range requests, a STAC API, S3), and ``cubehub demo``.

:func:`start_demo` serves the archive for notebooks; :func:`run_demo` runs the whole job.
Both are imported on first use, so the servers and the archive load without the pipeline.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cubehub.demo.run import DemoResult, run_demo
    from cubehub.demo.session import DemoServers, start_demo

_EXPORTS = {
    "DemoResult": "cubehub.demo.run",
    "run_demo": "cubehub.demo.run",
    "DemoServers": "cubehub.demo.session",
    "start_demo": "cubehub.demo.session",
}
__all__ = ["DemoResult", "DemoServers", "run_demo", "start_demo"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cubehub.demo' has no attribute {name!r}")
