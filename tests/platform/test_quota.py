"""A user cannot ask for more than their namespace allows: LimitRange maxima per container and a
ResourceQuota over the namespace, applied as the API server's admission plugins apply them
(k8s_rules.admit_pod) to the pods the operator makes from cubehub's own DaskCluster."""

from __future__ import annotations

from typing import Any

import pytest
from chart_helpers import load_yaml
from k8s_rules import admit_pod, quantity

from cubehub.clusters import kube, manifests


@pytest.fixture
def alice(booted: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = booted["users"]["alice"]
    return found


def _objects(alice: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [o for o in alice["objects"] if o["kind"] == kind]


def _worker_pod(alice: dict[str, Any], cpu: str, memory: str, maximum: int) -> dict[str, Any]:
    """The worker pod the operator makes from the DaskCluster cubehub asks for."""
    from dask_kubernetes.operator.controller import controller

    config = next(
        o for o in _objects(alice, "ConfigMap") if o["metadata"]["name"] == "cubehub-dask-config"
    )
    template = kube.PodTemplate.from_mapping(load_yaml(config["data"]["dask-pod.yaml"]))
    size = kube.PodSize(cpu=cpu, memory=memory)
    settings = kube.KubeSettings(
        image="registry.example.org/eo/cubehub:2026.11.0", namespace=alice["namespace"], minimum=0,
        maximum=maximum, idle_timeout=900, worker=size, scheduler=kube.PodSize(cpu="1", memory="2Gi"),
    )  # fmt: skip
    spec = manifests.cluster_spec(
        "cubehub-alice-0123456789", settings, owner=None, user="alice", template=template
    )
    worker = controller.build_worker_deployment_spec(
        "cubehub-alice-0123456789-default", alice["namespace"], "cubehub-alice-0123456789", "abc12",
        spec["spec"]["worker"]["spec"], {}, spec["spec"]["worker"]["metadata"]["labels"],
    )  # fmt: skip
    pod: dict[str, Any] = worker["spec"]["template"]["spec"]
    return pod


def test_an_oversized_worker_is_rejected(alice: dict[str, Any]) -> None:
    """5000 workers of 96 cores: not one of them is admitted."""
    pod = _worker_pod(alice, "96", "384Gi", 5000)
    problems = admit_pod(pod, _objects(alice, "LimitRange"), _objects(alice, "ResourceQuota"), {})
    assert any("limits.cpu 96 is above the LimitRange maximum 16" in p for p in problems), problems
    assert any("limits.memory 384Gi is above the LimitRange maximum 64Gi" in p for p in problems), (
        problems
    )
    assert any("exceeded quota cubehub-user: requests.cpu" in p for p in problems), problems


def test_the_quota_stops_a_cluster_that_grows_past_it(alice: dict[str, Any]) -> None:
    """Workers that fit the LimitRange are admitted until the namespace quota is used up."""
    (quota,) = _objects(alice, "ResourceQuota")
    hard = quota["spec"]["hard"]
    pod = _worker_pod(alice, "2", "8Gi", 5000)
    used: dict[str, float] = {}
    admitted = 0
    while not admit_pod(pod, _objects(alice, "LimitRange"), [quota], used):
        admitted += 1
        for key in ("requests.cpu", "limits.cpu"):
            used[key] = used.get(key, 0.0) + 2
        for key in ("requests.memory", "limits.memory"):
            used[key] = used.get(key, 0.0) + quantity("8Gi")
        used["pods"] = used.get("pods", 0.0) + 1
    # The lint values give a user 64 cores and 256Gi: 32 such workers, not 5000.
    assert admitted == min(
        quantity(hard["limits.cpu"]) // 2, quantity(hard["limits.memory"]) // quantity("8Gi")
    )
    assert admitted == 32
    assert hard["count/daskclusters.kubernetes.dask.org"] == "5"


def test_a_container_without_sizes_gets_the_defaults_and_is_counted(alice: dict[str, Any]) -> None:
    pod = {"containers": [{"name": "anything"}]}
    (limit_range,) = _objects(alice, "LimitRange")
    (quota,) = _objects(alice, "ResourceQuota")
    assert admit_pod(pod, [limit_range], [quota], {}) == []
    full = {"requests.cpu": quantity(quota["spec"]["hard"]["requests.cpu"])}
    assert admit_pod(pod, [limit_range], [quota], full) != []  # its default request still counts
