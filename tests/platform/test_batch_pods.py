"""The chart's batch pods run, rebuilt from the rendered manifests as the kubelet would.

- A DaskJob's runner: the operator's own builder makes its pod from the rendered DaskJob (it
  adds the scheduler address); its mounted files and environment (kubelet.py) then run the
  container's real command, ``cubehub run``, against a real Dask scheduler on loopback (standing
  in for the job's cluster, which the cluster's DNS name resolves to) and the demo archive's
  STAC API; it must finish with exit code 0 and write the Zarr store.
- A CronJob's runner starts its own cluster: in the runner's environment cubehub builds the
  DaskCluster it would ask the operator for (``cubehub.clusters.backends`` and ``cubehub.clusters.kube``, as
  ``cluster()`` does), and the operator's builders make its pods, which must run as the batch
  account with the object-store environment, the pull secrets and the restricted profile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.config
import kubernetes_validate
import pytest
import yaml
from chart_helpers import KUBE_VERSION, NAMESPACE, Manifest, Render, merge, named
from distributed import Client, LocalCluster
from k8s_rules import restricted_violations
from kubelet import PodIdentity, materialize, mount_roots, relocate

from cubehub.clusters.backends import dashboard_link
from cubehub.demo.archive import Archive, ArchiveSpec, build_archive
from cubehub.demo.servers import serve_files, serve_stac_api
from cubehub.output.open import open_composite
from cubehub.testing.daskprocs import dask_processes

#: The Secret objectStore.existingSecret names, as the operator of the platform creates it.
OBJECT_STORE_SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "cubehub-object-store", "namespace": NAMESPACE},
    "stringData": {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret"},
}


#: What the test process passes on besides the pod's environment: where programs and this
#: checkout's code are.
_PROCESS_ENV = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH")}


@pytest.fixture(scope="module")
def stac_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Archive, str]]:
    tmp = tmp_path_factory.mktemp("batch")
    archive = build_archive(tmp / "archive", ArchiveSpec(size=64, revisit_days=16))
    with serve_files(archive.root) as files:
        items = archive.write_item_collection(tmp / "items.json", files.url)
        with serve_stac_api(items, archive.collection_dict()) as api:
            yield archive, api.url


def _container_env(
    spec: dict[str, Any], name: str, manifests: list[Manifest], root: Path, pod_name: str
) -> dict[str, str]:
    """The container's environment, its mounts written under ``root`` and relocated there."""
    pod = PodIdentity(pod_name, NAMESPACE, service_account=spec["serviceAccountName"])
    env = materialize(spec, name, [*manifests, OBJECT_STORE_SECRET], root, pod)
    roots = mount_roots(spec, name)
    env = {key: relocate(value, roots, root) for key, value in env.items()}
    # Dask reads /etc/dask; relocated, that folder is $DASK_CONFIG.
    assert "/etc/dask" in roots
    return {**env, "DASK_CONFIG": f"{root}/etc/dask"}


def test_a_dask_job_runner_runs_its_job(
    render: Render,
    lint_values: dict[str, Any],
    stac_api: tuple[Archive, str],
    tmp_path: Path,
) -> None:
    archive, api = stac_api
    output = tmp_path / "demo.zarr"
    job_file = {
        "stac_api": api, "bbox": list(archive.bbox_lonlat()), "bounds": list(archive.bounds),
        "epsg": archive.epsg, "years": [2022], "bands": ["red", "nir"], "chunk_size": 64,
        "tile_size": 64, "output": str(output),
    }  # fmt: skip
    values = merge(lint_values, {"jobs": {"demo-once": {"file": yaml.safe_dump(job_file)}}})
    manifests = render(values)
    job = named(manifests, "DaskJob", "cubehub-demo-once")
    from dask_kubernetes.operator.controller import controller

    name = job["metadata"]["name"]
    runner = controller.build_job_pod_spec(
        f"{name}-runner", name, NAMESPACE, job["spec"]["job"]["spec"], {}, {}
    )
    spec = runner["spec"]
    (container,) = spec["containers"]
    assert "command" not in container  # the image's entrypoint, tini, runs it
    with dask_processes(tmp_path / "dask", n_workers=1, nthreads=2) as cluster:
        env = _container_env(
            spec, container["name"], manifests, tmp_path / "root", f"{name}-runner"
        )
        # The cluster's DNS name resolves to its scheduler: here, the one on loopback.
        in_cluster = f"tcp://{name}-scheduler.{NAMESPACE}.svc.cluster.local:8786"
        env = {key: value.replace(in_cluster, cluster.address) for key, value in env.items()}
        assert env["DASK_SCHEDULER_ADDRESS"] == cluster.address  # set by the operator
        roots = mount_roots(spec, container["name"])
        args = [relocate(arg, roots, tmp_path / "root") for arg in container["args"]]
        result = subprocess.run(
            [str(Path(sys.executable).parent / args[0]), *args[1:], "--quiet"],
            env={**_PROCESS_ENV, "HOME": str(tmp_path), **env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "dashboard unavailable" not in result.stderr
    assert "Tiles        " in result.stdout
    assert bool(open_composite(str(output))["complete"].all())


def test_a_cron_job_runner_gives_its_dask_pods_the_platform_template(
    lint_manifests: list[Manifest], tmp_path: Path
) -> None:
    cron = named(lint_manifests, "CronJob", "cubehub-quarterly-composite")
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = _container_env(
        spec, container["name"], lint_manifests, tmp_path, "cubehub-quarterly-composite-29000000-x"
    )
    build = """
import json, os, sys
from cubehub.clusters import kube, manifests
from cubehub.clusters.backends import kube_settings, pod_template
from dask_kubernetes.operator.controller import controller

values, settings = kube_settings({}, sys.argv[1])
owner = kube.PodOwner.from_environ(os.environ, sys.argv[1])
spec = manifests.cluster_spec("cubehub-dask-0123456789", settings, owner=owner, template=pod_template(values))
worker = controller.build_worker_deployment_spec(
    "cubehub-dask-0123456789-default", sys.argv[1], "cubehub-dask-0123456789", "abc12",
    spec["spec"]["worker"]["spec"], {}, spec["spec"]["worker"]["metadata"]["labels"],
)
print(json.dumps({"cluster": spec, "worker": worker["spec"]["template"]}))
"""
    result = subprocess.run(
        [sys.executable, "-c", build, NAMESPACE],
        env={**_PROCESS_ENV, "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    built = json.loads(result.stdout)
    cluster, worker = built["cluster"], built["worker"]
    assert cluster["spec"]["idleTimeout"] == 900
    assert cluster["metadata"]["ownerReferences"][0]["name"].startswith(
        "cubehub-quarterly-composite"
    )
    pod_spec = worker["spec"]
    assert pod_spec["serviceAccountName"] == "cubehub-batch"  # workload identity, RBAC
    assert pod_spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert restricted_violations(pod_spec) == []
    (dask_container,) = pod_spec["containers"]
    assert dask_container["image"] == "registry.example.org/eo/cubehub:2026.11.0"
    assert dask_container["envFrom"] == [
        {"configMapRef": {"name": "cubehub-env"}},
        {"secretRef": {"name": "cubehub-object-store"}},
    ]
    assert {m["mountPath"] for m in dask_container["volumeMounts"]} == {
        "/etc/dask/cubehub.yaml", "/etc/cubehub/dask-pod.yaml",
    }  # fmt: skip
    assert dask_container["resources"]["limits"] == {"cpu": "2", "memory": "8Gi"}
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w"}, "spec": pod_spec},
        KUBE_VERSION,
        strict=True,
    )


def test_a_dashboard_link_that_cannot_be_formatted_stops_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The notebooks' link names $JUPYTERHUB_SERVICE_PREFIX; where that is unset, distributed
    raises KeyError on every access, so `cubehub run` and the demo log why instead."""
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    template = "{JUPYTERHUB_SERVICE_PREFIX}proxy/{host}:{port}/status"
    with (
        dask.config.set({"distributed.dashboard.link": template}),
        LocalCluster(n_workers=0, processes=False, dashboard_address="127.0.0.1:0") as local,
        Client(local) as client,
    ):
        with pytest.raises(KeyError):
            _ = client.dashboard_link
        assert dashboard_link(client).startswith("unavailable (")
        assert "JUPYTERHUB_SERVICE_PREFIX" in dashboard_link(client)
        monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
        assert dashboard_link(client).startswith("/user/alice/proxy/")
