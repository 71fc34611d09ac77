"""The cubehub chart as the platform tests see it: where it is, how its dependencies are laid
out in charts/, and small helpers over rendered manifests.

The tests render a copy of helm/cubehub whose charts/ holds, as `helm dependency build` would:

- dask-kubernetes-operator: the chart inside the installed dask-kubernetes wheel, versioned
  as chartpress versions the published release;
- jupyterhub: the released Zero to JupyterHub archive, from the first of
  helm/cubehub/charts/ (where `helm dependency update helm/cubehub` downloads it, with
  network) and the offline dependency cache ``shared/vendor/charts`` beside the checkout.
  Nothing of z2jh is kept in this repository; without the archive the tests fail and say
  how to get it.

The versions must match those Chart.yaml pins, or the assembly fails and says what to do.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import dask_kubernetes
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "cubehub"
#: Where `helm dependency build`/`update` puts the downloaded dependencies (git-ignored).
DOWNLOADED = CHART / "charts"
#: The offline cache of released dependency archives, beside the checkout (never committed).
VENDORED = ROOT.parent / "shared" / "vendor" / "charts"
LINT_VALUES = CHART / "ci" / "lint-values.yaml"
RELEASE = "eo"
NAMESPACE = "cubehub"
#: The values a throw-away test install adds to the defaults: the dummy authenticator's opt-in.
TEST_INSTALL: dict[str, Any] = {"authentication": {"allowDummy": True}}
#: The pinned Kubernetes version every manifest is validated against.
KUBE_VERSION = "1.35.0"
#: The oldest Kubernetes the chart supports (its kubeVersion), validated too.
OLDEST_KUBE_VERSION = "1.28.0"

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


def jupyterhub_archive() -> Path:
    """The z2jh archive Chart.yaml pins: downloaded by Helm, else from the offline cache."""
    name = f"jupyterhub-{pinned('jupyterhub')}.tgz"
    stale = sorted(p.name for p in DOWNLOADED.glob("jupyterhub-*.tgz") if p.name != name)
    assert not stale, (
        f"{DOWNLOADED} holds {stale} but Chart.yaml pins {name}: run `helm dependency update "
        "helm/cubehub`"
    )
    for folder in (DOWNLOADED, VENDORED):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"the JupyterHub chart {name} is in neither {DOWNLOADED} nor {VENDORED}: run "
        "`helm dependency update helm/cubehub` (needs network), or put the released archive "
        "in one of those folders"
    )


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


def add_jupyterhub_chart(charts: Path) -> None:
    """The released z2jh archive, as `helm dependency build` leaves it in charts/."""
    archive = jupyterhub_archive()
    shutil.copy(archive, charts / archive.name)


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


#: Kinds of the rendered objects that live in a namespace (Helm leaves metadata.namespace out).
NAMESPACED_RBAC = ("Role", "RoleBinding", "NetworkPolicy")


def in_release_namespace(manifests: list[Manifest]) -> list[Manifest]:
    """``manifests`` with the release namespace set on the namespaced RBAC and policy objects,
    as the install puts them."""
    return [
        {**m, "metadata": {"namespace": NAMESPACE, **m["metadata"]}}
        if m["kind"] in NAMESPACED_RBAC
        else m
        for m in manifests
    ]
