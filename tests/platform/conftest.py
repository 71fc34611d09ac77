"""Fixtures for the platform tests: the cubehub chart with its dependencies, rendered by real
Helm (helm-python-sdk). How the dependencies are laid out (the downloaded JupyterHub chart or a
stand-in): chart_helpers.py.

Set CUBEHUB_REQUIRE_JUPYTERHUB_CHART=1 (the platform workflow does) to fail instead of skipping
when the JupyterHub chart has not been downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from chart_helpers import (
    HAVE_JUPYTERHUB,
    JUPYTERHUB_MISSING,
    LINT_VALUES,
    NAMESPACE,
    RELEASE,
    Manifest,
    Render,
    add_jupyterhub_chart,
    add_operator_chart,
    copy_chart,
    documents,
    load_yaml,
)


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CUBEHUB_REQUIRE_JUPYTERHUB_CHART") == "1" and not HAVE_JUPYTERHUB:
        raise pytest.UsageError(f"CUBEHUB_REQUIRE_JUPYTERHUB_CHART=1 but {JUPYTERHUB_MISSING}")


@pytest.fixture(scope="session")
def chart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """helm/cubehub copied with charts/ filled as `helm dependency build` would fill it."""
    target = tmp_path_factory.mktemp("chart") / "cubehub"
    copy_chart(target)
    charts = target / "charts"
    charts.mkdir()
    add_operator_chart(charts)
    add_jupyterhub_chart(charts)
    statuses = {d["name"]: d["status"] for d in helm.dependency_list(target)}
    assert set(statuses.values()) <= {"ok", "unpacked"}, statuses
    return target


@pytest.fixture
def chart(chart_dir: Path) -> Iterator[helm.Chart]:
    """The assembled chart, loaded for one test (rendering changes a loaded chart)."""
    with helm.Chart.load(chart_dir) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def lint_values() -> dict[str, Any]:
    values: dict[str, Any] = load_yaml(LINT_VALUES.read_text())
    return values


@pytest.fixture(scope="session")
def render(chart_dir: Path) -> Render:
    """Render the chart as an install does (values checked against the schemas first)."""

    def _render(values: dict[str, Any] | None = None) -> list[Manifest]:
        # A fresh load each time: rendering drops disabled subcharts from the loaded chart
        # itself, so a chart once rendered without JupyterHub would stay without it.
        with helm.Chart.load(chart_dir) as fresh:
            rendered = fresh.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        return documents(rendered)

    return _render


@pytest.fixture(scope="session")
def default_manifests(render: Render) -> list[Manifest]:
    return render()


@pytest.fixture(scope="session")
def lint_manifests(render: Render, lint_values: dict[str, Any]) -> list[Manifest]:
    return render(lint_values)
