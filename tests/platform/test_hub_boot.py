"""The hub boots with the real JupyterHub chart's configuration, and builds restricted notebook pods.

The hub container is rebuilt from the rendered manifests as the kubelet would build it
(kubelet.py): its mounted files (z2jh's jupyterhub_config.py and z2jh.py, the chart's values in
the hub Secret, cubehub's integration) and its environment. JupyterHub 5.5 and KubeSpawner 7,
at the hub image's pins (hubenv.py), then load z2jh's jupyterhub_config.py with JupyterHub's own
loader and build each user's notebook pod for each profile offline (hub_boot.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from chart_helpers import KUBE_VERSION, NAMESPACE, Manifest, named
from hubenv import hub_python
from k8s_rules import restricted_violations
from kubelet import PodIdentity, materialize, mount_roots, relocate

HUB_BOOT = Path(__file__).with_name("hub_boot.py")
USERS = ("alice", "bob")
OFFLINE_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:9"}}],
    "users": [{"name": "hub", "user": {"token": "unused"}}],
    "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "hub"}}],
    "current-context": "offline",
}


def boot_hub(manifests: list[Manifest], root: Path) -> dict[str, Any]:
    """Run hub_boot.py in the hub container's files and environment; its JSON result."""
    spec = named(manifests, "Deployment", "hub")["spec"]["template"]["spec"]
    pod = PodIdentity("hub-5d8f7c9b4-x2k7q", NAMESPACE, service_account=spec["serviceAccountName"])
    env = materialize(spec, "hub", manifests, root, pod)
    roots = mount_roots(spec, "hub")
    for source in root.rglob("*.py"):
        source.write_text(relocate(source.read_text(), roots, root))
    env = {key: relocate(value, roots, root) for key, value in env.items()}
    (container,) = spec["containers"]
    args = [relocate(arg, roots, root) for arg in container["args"]]
    assert args[:2] == ["jupyterhub", "--config"], args
    # KubeSpawner makes its API clients up front; they point at a closed port, and nothing
    # calls them while pods are built.
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(json.dumps(OFFLINE_KUBECONFIG))
    result = subprocess.run(
        [str(hub_python()), str(HUB_BOOT), args[2], *USERS],
        env={"PATH": os.environ["PATH"], "HOME": str(root), "KUBECONFIG": str(kubeconfig), **env},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    booted: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return booted


def _pod(manifest: dict[str, Any]) -> dict[str, Any]:
    """A built pod as the API server receives it (KubeSpawner sends quantities as numbers)."""
    for container in manifest["spec"]["containers"]:
        for part in container.get("resources", {}).values():
            for key, amount in part.items():
                part[key] = str(amount)
    return manifest


def test_hub_loads_the_chart_configuration(booted: dict[str, Any]) -> None:
    """z2jh's configuration and cubehub's integration load; notebooks reach the hub by FQDN."""
    assert booted["spawner_class"].endswith(".CubehubSpawner")
    assert booted["hub_connect_url"] == f"http://hub.{NAMESPACE}.svc:8081"
    assert set(booted["users"]) == set(USERS)


@pytest.mark.parametrize("user", USERS)
def test_each_user_gets_a_restricted_namespace_of_their_own(
    booted: dict[str, Any], user: str
) -> None:
    found = booted["users"][user]
    assert found["namespace"] == f"eo-{user}"  # users.namespaceTemplate of the lint values
    labels = found["namespace_labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["cubehub.io/user-namespace"] == "true"
    objects = {(o["kind"], o["metadata"]["name"]): o for o in found["objects"]}
    assert {kind for kind, _ in objects} == {
        "ServiceAccount", "RoleBinding", "ResourceQuota", "LimitRange", "ConfigMap", "NetworkPolicy",
    }  # fmt: skip
    for manifest in objects.values():
        assert manifest["metadata"]["namespace"] == found["namespace"]
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
    binding = objects[("RoleBinding", "cubehub-user")]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cubehub-user", "namespace": found["namespace"]}
    ]


@pytest.mark.parametrize("user", USERS)
def test_notebook_pods_of_every_profile(booted: dict[str, Any], user: str) -> None:
    """Each profile's pod: the user's account, Dask config mounted, restricted, sized."""
    pods = booted["users"][user]["pods"]
    assert len(pods) == 2  # the chart's two profiles
    for slug, manifest in pods.items():
        spec = manifest["spec"]
        assert spec["serviceAccountName"] == "cubehub-user", slug
        assert restricted_violations(spec) == [], slug
        assert manifest["metadata"]["labels"]["cubehub.io/user"] == user
        (container,) = spec["containers"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        for path in (
            "/etc/dask/cubehub.yaml",
            "/etc/dask/cubehub-notebook.yaml",
            "/etc/cubehub/dask-pod.yaml",
        ):
            assert mounts[path]["name"] == "cubehub-dask-config", (slug, path)
        assert "/home/jovyan" in mounts  # z2jh's home volume, kept
        env = {e["name"]: e for e in container["env"]}
        assert env["CUBEHUB_USER"]["value"] == user
        assert env["CUBEHUB_NAMESPACE"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.namespace"}
        }
        assert container["envFrom"] == [
            {"configMapRef": {"name": "cubehub-env"}},
            {"secretRef": {"name": "cubehub-object-store"}},
        ]
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][part]), (slug, part)
        assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
        kubernetes_validate.validate(_pod(manifest), KUBE_VERSION, strict=True)
    sizes = {
        slug: p["spec"]["containers"][0]["resources"]["limits"]["cpu"] for slug, p in pods.items()
    }
    assert sorted(float(v) for v in sizes.values()) == [2.0, 4.0]
