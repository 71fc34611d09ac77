"""The Dask configuration the chart gives every cubehub pod, read back by Dask itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dask.config
import pytest
from chart_helpers import Manifest, load_yaml, named
from distributed.utils import format_dashboard_link

PACKAGE_DEFAULTS = Path(__file__).resolve().parents[2] / "src" / "cubehub" / "cubehub.yaml"


def _keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        keys.add(path)
        # gdal holds GDAL option names, free-form; node_selector and tolerations are data.
        if isinstance(value, dict) and key not in ("gdal", "node_selector"):
            keys |= _keys(value, f"{path}.")
    return keys


def _chart_config(manifests: list[Manifest]) -> dict[str, Any]:
    text = named(manifests, "ConfigMap", "cubehub-dask-config")["data"]["cubehub.yaml"]
    config: dict[str, Any] = load_yaml(text)
    return config


def test_chart_sets_only_settings_cubehub_knows(default_manifests: list[Manifest]) -> None:
    chart = _chart_config(default_manifests)
    package = load_yaml(PACKAGE_DEFAULTS.read_text())
    assert _keys(chart["cubehub"]) <= _keys(package["cubehub"])
    assert set(chart) == {"cubehub"}


def test_chart_defaults_are_cubehubs(default_manifests: list[Manifest]) -> None:
    """Out of the box the chart changes only the backend (and schedules Dask pods onto a
    tainted Dask pool when there is one): sizes, limits and GDAL options are cubehub's."""
    chart = _chart_config(default_manifests)["cubehub"]
    package = load_yaml(PACKAGE_DEFAULTS.read_text())["cubehub"]
    assert chart["gdal"] == package["gdal"]
    assert chart["versions"]["on_mismatch"] == package["versions"]["on_mismatch"]
    ours, theirs = chart["cluster"]["kubernetes"], package["cluster"]["kubernetes"]
    for key in ("image", "namespace", "adaptive", "idle_timeout"):
        assert ours[key] == theirs[key], key
    for role in ("worker", "scheduler"):
        for key in ("cpu", "memory", "node_selector"):
            assert ours[role][key] == theirs[role][key], (role, key)


def _notebook_config(manifests: list[Manifest]) -> dict[str, str]:
    """The Dask ConfigMap the hub writes into each user namespace."""
    settings = json.loads(named(manifests, "ConfigMap", "cubehub-hub")["data"]["hub-settings.json"])
    data: dict[str, str] = named(settings["namespaceObjects"], "ConfigMap", "cubehub-dask-config")[
        "data"
    ]
    return data


@pytest.mark.parametrize("where", ["notebook", "batch"])
def test_dask_reads_the_config_files(
    lint_manifests: list[Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Dask reads the mounted files; only notebooks link the dashboard through their proxy."""
    if where == "notebook":
        data = _notebook_config(lint_manifests)
        files: tuple[str, ...] = ("cubehub.yaml", "cubehub-notebook.yaml")
    else:
        data = named(lint_manifests, "ConfigMap", "cubehub-dask-config")["data"]
        files = ("cubehub.yaml",)
    for name in files:
        (tmp_path / name).write_text(data[name])
    found = dask.config.collect(paths=[str(tmp_path)], env={})
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    with dask.config.set(dask.config.merge(dask.config.config, found)):
        assert dask.config.get("cubehub.cluster.backend") == "kubernetes"
        assert dask.config.get("cubehub.cluster.kubernetes.idle_timeout") == 900
        assert dask.config.get("cubehub.cluster.kubernetes.adaptive") == {
            "minimum": 1,
            "maximum": 40,
        }
        worker = dask.config.get("cubehub.cluster.kubernetes.worker")
        assert worker["node_selector"] == {"cubehub.io/node-purpose": "dask-worker"}
        assert len(worker["tolerations"]) == 2
        host = "cubehub-alice-0123456789-scheduler.eo-alice"
        if where == "batch":
            # distributed's default link: it needs nothing a batch pod lacks.
            assert format_dashboard_link(host, 8787) == f"http://{host}:8787/status"  # type: ignore[no-untyped-call,unused-ignore]
            return
        # The dashboard link goes through the user's server proxy to the scheduler.
        monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
        link = format_dashboard_link(host, 8787)  # type: ignore[no-untyped-call,unused-ignore]
        assert link == f"/user/alice/proxy/{host}:8787/status"
