"""Shared fixtures: real servers on loopback, and a check that none outlive the tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
SERVER_NAMES = ("rustac", "weed", "dask-scheduler", "dask-worker", "configurable-http-proxy")


def server_processes() -> list[psutil.Process]:
    """Processes of servers the tests may start, that are children of this test run."""
    me = psutil.Process()
    found = []
    for child in me.children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        if any(name in cmd for name in SERVER_NAMES):
            found.append(child)
    return found


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_servers() -> Iterator[None]:
    yield
    left = [" ".join(p.cmdline()) for p in server_processes() if p.is_running()]
    assert not left, f"servers left running after the tests: {left}"


@pytest.fixture(scope="session")
def earth_search_items() -> list[dict[str, Any]]:
    """The 16 real Earth Search v1 sentinel-2-l2a items in shared/realdata/mapchete-eo."""
    folder = REALDATA / "mapchete-eo" / "stac_items"
    return [json.loads(p.read_text()) for p in sorted(folder.iterdir())]


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The demo archive at 64 x 64 pixels, built once per test session."""
    from cubehub.testing.archive import ArchiveSpec, build_archive

    return build_archive(tmp_path_factory.mktemp("archive-64"), ArchiveSpec(size=64))
