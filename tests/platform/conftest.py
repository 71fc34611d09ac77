"""Fixtures for the platform tests: the cubehub chart with its real dependencies (the released
JupyterHub chart and the operator chart), rendered by real Helm (helm-python-sdk). Where the
dependencies come from: chart_helpers.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from chart_helpers import (
    LINT_VALUES,
    NAMESPACE,
    RELEASE,
    TEST_INSTALL,
    Manifest,
    Render,
    add_jupyterhub_chart,
    add_operator_chart,
    copy_chart,
    documents,
    load_yaml,
    merge,
)


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
    """Render the chart as an install does (values checked against the schemas first).

    Values are merged over TEST_INSTALL (the opt-in to JupyterHub's dummy authenticator that a
    throw-away install needs) unless ``test_install=False``.
    """

    def _render(
        values: dict[str, Any] | None = None, *, test_install: bool = True
    ) -> list[Manifest]:
        if test_install:
            values = merge(TEST_INSTALL, values or {})
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


@pytest.fixture(scope="session")
def booted(
    lint_manifests: list[Manifest], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The hub booted from the lint values' render, with alice's and bob's pods and namespaces
    (test_hub_boot.py)."""
    from test_hub_boot import boot_hub

    return boot_hub(lint_manifests, tmp_path_factory.mktemp("hub"))
