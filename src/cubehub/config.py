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
    """GDAL configuration options for cloud reads (``cubehub.gdal``), as strings."""
    return {str(k): str(v) for k, v in get("gdal").items()}
