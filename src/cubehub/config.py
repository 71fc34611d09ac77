"""Settings with one precedence order: argument > environment / dask config > packaged YAML.

cubehub keeps its settings in dask's configuration under the ``cubehub`` key, so they reach
workers the way every other dask setting does, and can be set per user with environment
variables such as ``DASK_CUBEHUB__CLUSTER__BACKEND=address``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.config
import yaml

from cubehub.errors import InputError

_DEFAULTS_FILE = Path(__file__).with_name("cubehub.yaml")
#: The one address every server cubehub starts listens on (STAC API, files, S3, dashboards).
LOOPBACK = "127.0.0.1"


def _load_defaults() -> None:
    with _DEFAULTS_FILE.open() as f:
        defaults = yaml.safe_load(f)
    # Defaults layer under what is already set: the environment and config files dask read
    # at import, and every dask.config.set(...) the user made before importing cubehub.
    # (dask.config.refresh() here would wipe those.)
    dask.config.update_defaults(defaults)


_load_defaults()


def get(key: str, override: Any = None) -> Any:
    """The setting ``cubehub.<key>``; ``override`` wins when it is not None.

    >>> get("cluster.backend")
    'local'
    >>> get("cluster.backend", "address")
    'address'
    """
    return dask.config.get(f"cubehub.{key}", override_with=override)


def gdal_env() -> dict[str, str]:
    """GDAL configuration options for cloud reads (``cubehub.gdal``), as strings, their
    names upper-cased as GDAL spells them.

    dask lower-cases the keys of ``DASK_CUBEHUB__GDAL__...`` variables, so such a variable
    arrives beside the default's upper-case name; the user's spelling wins. GDAL_CACHEMAX
    is refused: it sizes one cache for the whole process, and these options are entered
    around every read.

    >>> with dask.config.set({"cubehub.gdal.gdal_http_timeout": "120"}):
    ...     gdal_env()["GDAL_HTTP_TIMEOUT"]
    '120'
    """
    settings = {str(k): str(v) for k, v in get("gdal").items()}
    # Defaults first, then what the user spelled otherwise, so a clash goes to the user.
    ordered = sorted(settings.items(), key=lambda kv: kv[0] != kv[0].upper())
    options = {name.upper(): value for name, value in ordered}
    if "GDAL_CACHEMAX" in options:
        raise InputError(
            "cubehub.gdal.GDAL_CACHEMAX: GDAL's block cache is one per process, and the "
            "cubehub.gdal options are set around every read; set it as an environment "
            "variable of the workers instead (cubehub.cluster.worker_env: {GDAL_CACHEMAX: "
            f"'{options['GDAL_CACHEMAX']}'}}), and of this process for local reads"
        )
    return options
