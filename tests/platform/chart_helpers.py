"""The cubehub chart as the platform tests see it: where it is, how its dependencies are laid
out in charts/, and small helpers over rendered manifests.

The tests render a copy of helm/cubehub whose charts/ holds, as `helm dependency build` would:

- dask-kubernetes-operator: the chart inside the installed dask-kubernetes wheel, versioned
  as chartpress versions the published release;
- jupyterhub: the Zero to JupyterHub archive, only when `helm dependency update helm/cubehub`
  has downloaded it into helm/cubehub/charts/ (the platform workflow does, with network; the
  archive is git-ignored and nothing of z2jh is kept in this repository).

Without that archive a stand-in takes its place: a chart named jupyterhub with no resources,
no values and no schema, defining only the named templates cubehub's own templates include
from z2jh (the hub's ServiceAccount name). All of cubehub's templates then render, those for
the hub included (its integration ConfigMap, the notebook NetworkPolicy, the checks on
``jupyterhub.*`` values); what only z2jh renders or validates is absent, and the few tests
that need it are marked ``needs_jupyterhub`` and skipped.

The versions must match those Chart.yaml pins, or the assembly fails and says what to do.
"""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import dask_kubernetes
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "cubehub"
#: Where `helm dependency build`/`update` puts the downloaded dependencies (git-ignored).
DOWNLOADED = CHART / "charts"
LINT_VALUES = CHART / "ci" / "lint-values.yaml"
RELEASE = "eo"
NAMESPACE = "cubehub"
#: The pinned Kubernetes version every manifest is validated against.
KUBE_VERSION = "1.35.0"
#: The hub ServiceAccount name the stand-in gives (the real chart names its own).
STAND_IN_HUB_ACCOUNT = "stand-in-hub"
#: What the stand-in defines: each z2jh named template cubehub includes, and its output.
STAND_IN_TEMPLATES = {"jupyterhub.hub-serviceaccount.fullname": STAND_IN_HUB_ACCOUNT}
JUPYTERHUB_MISSING = (
    "z2jh chart not downloaded: run `helm dependency update helm/cubehub` with network"
)

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]


def load_yaml(text: str) -> Any:
    """yaml.safe_load with the C parser: the CRDs are large."""
    return yaml.load(text, Loader=yaml.CSafeLoader)


def pinned(name: str) -> str:
    """The version of dependency ``name`` that helm/cubehub/Chart.yaml pins."""
    chart = load_yaml((CHART / "Chart.yaml").read_text())
    found: str = next(dep["version"] for dep in chart["dependencies"] if dep["name"] == name)
    return found


def downloaded_jupyterhub_chart() -> Path | None:
    """helm/cubehub/charts/jupyterhub-<pinned>.tgz if Helm has downloaded it, else None."""
    archives = sorted(DOWNLOADED.glob("jupyterhub-*.tgz"))
    if not archives:
        return None
    expected = DOWNLOADED / f"jupyterhub-{pinned('jupyterhub')}.tgz"
    assert archives == [expected], (
        f"{DOWNLOADED} holds {[a.name for a in archives]} but Chart.yaml pins {expected.name}: "
        "run `helm dependency update helm/cubehub`"
    )
    return expected


JUPYTERHUB_ARCHIVE = downloaded_jupyterhub_chart()
HAVE_JUPYTERHUB = JUPYTERHUB_ARCHIVE is not None
#: For the few tests that check what only the real z2jh chart renders or validates.
needs_jupyterhub = pytest.mark.skipif(not HAVE_JUPYTERHUB, reason=JUPYTERHUB_MISSING)


def copy_chart(target: Path) -> None:
    """helm/cubehub without its charts/ (which may hold downloaded archives)."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {"charts"} if Path(directory) == CHART else set()

    shutil.copytree(CHART, target, ignore=ignore)


def add_operator_chart(charts: Path) -> None:
    """Copy the operator chart out of the wheel, versioned as its published release is."""
    source = (
        Path(dask_kubernetes.__file__).parent / "operator/deployment/helm/dask-kubernetes-operator"
    )
    release = version("dask-kubernetes")
    assert release == pinned("dask-kubernetes-operator"), (
        f"the installed dask-kubernetes is {release} but helm/cubehub/Chart.yaml pins the "
        f"operator chart {pinned('dask-kubernetes-operator')}: bump the dependency with the "
        "lock file"
    )
    target = charts / "dask-kubernetes-operator"
    shutil.copytree(source, target)
    for name, placeholder in (
        ("Chart.yaml", "0.0.1-set.by.chartpress"),
        ("values.yaml", "set-by-chartpress"),
    ):
        path = target / name
        assert placeholder in path.read_text(), (
            f"{path.name} no longer has chartpress's placeholder"
        )
        path.write_text(path.read_text().replace(placeholder, release))


def jupyterhub_includes() -> set[str]:
    """The named templates of the JupyterHub chart that cubehub's templates include."""
    text = "".join(path.read_text() for path in (CHART / "templates").iterdir())
    return set(re.findall(r'include\s+"(jupyterhub\.[^"]+)"', text))


def add_jupyterhub_stand_in(charts: Path) -> None:
    """A chart named jupyterhub that defines only STAND_IN_TEMPLATES (see the module doc)."""
    missing = jupyterhub_includes() - set(STAND_IN_TEMPLATES)
    assert not missing, (
        f"cubehub's templates include {sorted(missing)} from the JupyterHub chart: define them "
        "in STAND_IN_TEMPLATES (tests/platform/chart_helpers.py)"
    )
    target = charts / "jupyterhub"
    (target / "templates").mkdir(parents=True)
    metadata = {
        "apiVersion": "v2",
        "name": "jupyterhub",
        "version": pinned("jupyterhub"),
        "description": "Test stand-in for the JupyterHub chart (not downloaded): no resources.",
    }
    (target / "Chart.yaml").write_text(yaml.safe_dump(metadata))
    (target / "templates" / "_helpers.tpl").write_text(
        "".join(
            f'{{{{- define "{name}" -}}}}{output}{{{{- end }}}}\n'
            for name, output in STAND_IN_TEMPLATES.items()
        )
    )


def add_jupyterhub_chart(charts: Path) -> None:
    """The downloaded z2jh archive if there is one, else the stand-in."""
    if JUPYTERHUB_ARCHIVE is None:
        add_jupyterhub_stand_in(charts)
    else:
        shutil.copy(JUPYTERHUB_ARCHIVE, charts / JUPYTERHUB_ARCHIVE.name)


def documents(rendered: dict[str, str]) -> list[Manifest]:
    """The manifests of a render, as `helm template` prints them (no NOTES, no empty docs)."""
    manifests: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        manifests.extend(doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc)
    return manifests


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of values, as Helm merges -f files (maps merge, everything else replaces)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [m for m in by_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]
