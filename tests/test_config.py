"""cubehub's settings layer under the user's own dask settings, never over them."""

from __future__ import annotations

import subprocess
import sys
import textwrap


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
