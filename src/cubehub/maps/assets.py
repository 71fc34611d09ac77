"""The web page's files: the page, its script and styles (in the repository) and the map
library (Leaflet, installed from npm by the build step into ``static/vendor/``)."""

from __future__ import annotations

from pathlib import Path

from cubehub.errors import ServerError

__all__ = ["VENDOR_FILES", "static_dir"]

STATIC = Path(__file__).with_name("static")
#: What the build step (``npm ci --prefix web && npm run --prefix web build``) puts there.
VENDOR_FILES = ("vendor/leaflet.js", "vendor/leaflet.css")


def static_dir() -> Path:
    """The folder of the page's files.

    Raises:
        ServerError: the map library was not built into the package (a source checkout
            before ``npm run --prefix web build``).
    """
    missing = [name for name in VENDOR_FILES if not (STATIC / name).is_file()]
    if missing:
        raise ServerError(
            f"the web map's library is not built ({', '.join(missing)} missing in {STATIC}); "
            "run `npm ci --prefix web && npm run --prefix web build` in the repository"
        )
    return STATIC
