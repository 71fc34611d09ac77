"""cubehub's settings layer under the user's own dask settings, never over them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import dask.config
import pytest

from cubehub import config
from cubehub.errors import InputError


def test_importing_cubehub_keeps_the_users_dask_settings() -> None:
    # In a fresh interpreter: this one imported cubehub.config long ago.
    script = textwrap.dedent(
        """
        import dask.config
        dask.config.set({"distributed.comm.timeouts.connect": "77s",
                         "cubehub.composite.chunk_size": 256})
        from cubehub import config
        assert config.get("composite.chunk_size") == 256, config.get("composite.chunk_size")
        assert dask.config.get("distributed.comm.timeouts.connect") == "77s"
        assert config.get("cluster.backend") == "local"  # the packaged defaults are there too
        print("kept")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "kept", done.stderr


def test_a_gdal_option_from_a_dask_variable_wins_over_the_default_in_gdal_itself() -> None:
    # dask lower-cases DASK_CUBEHUB__GDAL__* keys: the default's upper-case spelling stood
    # beside the user's and, set after it, silently won inside GDAL.
    script = textwrap.dedent(
        """
        from rasterio._env import get_gdal_config
        from cubehub import config
        from cubehub.cube import gdal_env
        assert config.gdal_env()["GDAL_HTTP_TIMEOUT"] == "120", config.gdal_env()
        with gdal_env().read:
            print(get_gdal_config("GDAL_HTTP_TIMEOUT"))
        """
    )
    env = {**os.environ, "DASK_CUBEHUB__GDAL__GDAL_HTTP_TIMEOUT": "120"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "120"


def test_gdal_cachemax_among_the_read_options_is_refused_naming_the_worker_environment() -> None:
    with (
        dask.config.set({"cubehub.gdal.GDAL_CACHEMAX": "512"}),
        pytest.raises(InputError, match=r"cluster\.worker_env: \{GDAL_CACHEMAX: '512'\}"),
    ):
        config.gdal_env()
