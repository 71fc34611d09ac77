"""The DaskCluster and DaskJob manifests, checked offline as the API server would check them.

Schemas: the dask-kubernetes operator's CRDs shipped in its wheel, and the Kubernetes
OpenAPI schemas of kubernetes-validate (strict, Kubernetes 1.31). No Kubernetes API here.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dask_kubernetes.operator.validation import validate_cluster_name

from cubehub.clusters import kube, manifests
from cubehub.credentials import is_secret_name
from cubehub.errors import ClusterError, InputError
from cubehub.jobspec import make_job
from cubehub.testing.kubeschema import pod_specs, prune, validate_dask_resource, validate_embedded

CANARY = "canary-3f9c2b7e-do-not-ship"
OWNER = kube.PodOwner("jupyter-alice", "5f1c2a9e-0b7d-4c1e-9a3f-2d6b8e4f7a10", "eo-users")
#: What the platform chart puts in $CUBEHUB_DASK_POD_TEMPLATE (helm/cubehub, daskPodTemplate).
TEMPLATE = kube.PodTemplate.from_mapping(
    {
        "labels": {"app.kubernetes.io/name": "cubehub"},
        "pod": {
            "serviceAccountName": "cubehub-user",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "fsGroup": 100,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumes": [{"name": "dask-config", "configMap": {"name": "cubehub-dask-config"}}],
        },
        "container": {
            "imagePullPolicy": "IfNotPresent",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": False,
                "capabilities": {"drop": ["ALL"]},
            },
            "envFrom": [{"configMapRef": {"name": "cubehub-object-store"}}],
            "volumeMounts": [
                {
                    "name": "dask-config",
                    "mountPath": "/etc/dask/cubehub.yaml",
                    "subPath": "cubehub.yaml",
                    "readOnly": True,
                }
            ],
        },
    }
)


def settings(**changes: Any) -> kube.KubeSettings:
    base = kube.KubeSettings(
        image="registry.example.org/cubehub/notebook:2026.11.1",
        namespace="eo-users",
        minimum=0,
        maximum=8,
        idle_timeout=1800,
        worker=kube.PodSize(
            "2",
            "8Gi",
            node_selector={"cubehub.io/node-purpose": "dask-worker"},
            tolerations=(
                {
                    "key": "cubehub.io/dedicated",
                    "operator": "Equal",
                    "value": "dask",
                    "effect": "NoSchedule",
                },
            ),
        ),
        scheduler=kube.PodSize("1", "2Gi"),
        secrets=("s3-credentials",),
        env={"AWS_ENDPOINT_URL": "http://seaweedfs.storage:8333"},
    )
    return kube.KubeSettings(**{**base.__dict__, **changes})


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    return manifests.cluster_spec(
        "cubehub-alice-1a2b3c4d5e", settings(), owner=OWNER, user="alice", template=TEMPLATE
    )


@pytest.fixture(scope="module")
def daskjob() -> dict[str, Any]:
    job = make_job(
        stac_api="https://earth-search.aws.element84.com/v1",
        bbox=(15.6, 47.0, 15.7, 47.07),
        years=[2022],
        output="s3://composites/graz.zarr",
    )
    text = yaml.safe_dump(job.model_dump(mode="json"))
    return manifests.daskjob_manifest(
        "cubehub-graz-2022",
        text,
        settings(),
        workers=6,
        runner=kube.PodSize("1", "2Gi"),
        active_deadline_seconds=7200,
        ttl_seconds_after_finished=86400,
        owner=OWNER,
        user="alice",
        template=TEMPLATE,
    )


def containers(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {path: spec["containers"][0] for path, spec in pod_specs(resource)}


def test_cluster_spec_is_what_the_operator_builds_completed(cluster: dict[str, Any]) -> None:
    from dask_kubernetes.operator.kubecluster.kubecluster import make_cluster_spec

    ours = cluster["spec"]
    theirs = make_cluster_spec(name="cubehub-alice-1a2b3c4d5e", image="x", n_workers=0)["spec"]
    assert set(ours) == set(theirs)
    assert ours["scheduler"]["service"] == theirs["scheduler"]["service"]
    assert (
        ours["scheduler"]["spec"]["containers"][0]["ports"]
        == theirs["scheduler"]["spec"]["containers"][0]["ports"]
    )
    # The dask-worker / dask-scheduler scripts of the operator's defaults are gone from distributed.
    assert ours["worker"]["spec"]["containers"][0]["args"][:2] == ["dask", "worker"]
    assert ours["scheduler"]["spec"]["containers"][0]["args"] == [
        "dask",
        "scheduler",
        "--host",
        "0.0.0.0",
    ]
    validate_cluster_name(cluster["metadata"]["name"])


def test_cluster_spec_validates_against_the_operator_crd_and_kubernetes(
    cluster: dict[str, Any],
) -> None:
    stored = validate_dask_resource(
        cluster
    )  # raises on a violation or a field the server would drop
    assert stored["spec"] == cluster["spec"]
    validate_embedded(cluster)


def test_cluster_spec_carries_timeout_owner_resources_image_and_labels(
    cluster: dict[str, Any],
) -> None:
    meta = cluster["metadata"]
    assert cluster["spec"]["idleTimeout"] == 1800
    assert meta["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": OWNER.name, "uid": OWNER.uid}
    ]
    assert meta["namespace"] == "eo-users"
    assert meta["labels"][kube.USER_LABEL] == "alice"
    assert cluster["spec"]["worker"]["replicas"] == 0
    found = containers(cluster)
    worker, scheduler = found["spec.worker.spec"], found["spec.scheduler.spec"]
    assert worker["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"cpu": "2", "memory": "8Gi"},
    }
    assert scheduler["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    for path, spec in pod_specs(cluster):
        assert (
            spec["containers"][0]["image"] == "registry.example.org/cubehub/notebook:2026.11.1"
        ), path
        assert spec["serviceAccountName"] == "cubehub-user"
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
    for role in ("worker", "scheduler"):
        # The operator copies these labels onto the pods: the platform's NetworkPolicy selects them.
        assert cluster["spec"][role]["metadata"]["labels"][kube.USER_LABEL] == "alice"
    assert cluster["spec"]["worker"]["spec"]["nodeSelector"] == {
        "cubehub.io/node-purpose": "dask-worker"
    }
    assert "nodeSelector" not in cluster["spec"]["scheduler"]["spec"]


def test_secrets_go_by_reference_and_never_as_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", CANARY)
    spec = manifests.cluster_spec(
        "cubehub-bob-0000000001", settings(), owner=OWNER, user="bob", template=TEMPLATE
    )
    text = yaml.safe_dump(spec)
    assert CANARY not in text
    for path, container in containers(spec).items():
        assert {"secretRef": {"name": "s3-credentials"}} in container["envFrom"], path
        assert {"configMapRef": {"name": "cubehub-object-store"}} in container["envFrom"], path
        assert not any(is_secret_name(e["name"]) for e in container.get("env", [])), path
    with pytest.raises(InputError, match="AWS_SECRET_ACCESS_KEY"):
        settings(env={"AWS_SECRET_ACCESS_KEY": CANARY})


def test_an_outdated_crd_that_drops_the_idle_timeout_is_caught_on_read_back(
    cluster: dict[str, Any],
) -> None:
    from cubehub.testing.kubeschema import crd_schema

    # What the API server stores with the shipped CRD: everything asked for.
    stored = validate_dask_resource(cluster)
    assert manifests.check_applied(cluster, stored) == []
    # An operator installed before idleTimeout existed (dask-kubernetes #882): the field is pruned.
    old = copy.deepcopy(crd_schema("DaskCluster"))
    del old["properties"]["spec"]["properties"]["idleTimeout"]
    with pytest.raises(ValueError, match="idleTimeout"):
        validate_dask_resource(cluster, old)
    body, dropped = prune({"spec": cluster["spec"]}, old)
    assert dropped == [".spec.idleTimeout"]
    problems = manifests.check_applied(cluster, {"metadata": cluster["metadata"], **body})
    assert len(problems) == 1 and "idleTimeout" in problems[0] and "#882" in problems[0]
    no_owner = {"metadata": {"labels": cluster["metadata"]["labels"]}, "spec": cluster["spec"]}
    assert "ownerReferences" in manifests.check_applied(cluster, no_owner)[0]


def test_the_schemas_reject_what_they_should(cluster: dict[str, Any]) -> None:
    """The validators are not vacuous: typos and bad types fail."""
    typo = copy.deepcopy(cluster)
    typo["spec"]["worker"]["spec"]["containers"][0]["resource"] = {"limits": {"cpu": "1"}}
    with pytest.raises(ValueError, match="resource"):
        validate_dask_resource(typo)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_embedded(typo)
    wrong_type = copy.deepcopy(cluster)
    wrong_type["spec"]["idleTimeout"] = "30 minutes"
    with pytest.raises(jsonschema.ValidationError):
        validate_dask_resource(wrong_type)
    bad_owner = copy.deepcopy(cluster)
    del bad_owner["metadata"]["ownerReferences"][0]["uid"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_embedded(bad_owner)


def test_daskjob_validates_and_carries_deadline_ttl_resources_and_the_job(
    daskjob: dict[str, Any],
) -> None:
    validate_dask_resource(daskjob)
    validate_embedded(daskjob)
    assert daskjob["metadata"]["annotations"][manifests.TTL_ANNOTATION] == "86400"
    assert daskjob["metadata"]["ownerReferences"] == [OWNER.reference()]
    assert daskjob["metadata"]["namespace"] == "eo-users"
    runner_pod = daskjob["spec"]["job"]["spec"]
    assert runner_pod["activeDeadlineSeconds"] == 7200
    assert runner_pod["restartPolicy"] == "Never"
    found = containers(daskjob)
    runner = found["spec.job.spec"]
    assert (
        runner["args"] == ["cubehub", "run", f"env:{manifests.JOB_ENV}"] and "command" not in runner
    )
    assert runner["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    env = {e["name"]: e.get("value") for e in runner["env"]}
    job = make_job(**yaml.safe_load(env[manifests.JOB_ENV]))
    assert job.output == "s3://composites/graz.zarr"
    cluster = daskjob["spec"]["cluster"]["spec"]
    assert cluster["worker"]["replicas"] == 6
    assert cluster["idleTimeout"] == 1800
    assert found["spec.cluster.spec.worker.spec"]["resources"]["requests"] == {
        "cpu": "2",
        "memory": "8Gi",
    }
    for path, container in found.items():
        assert container["image"] == "registry.example.org/cubehub/notebook:2026.11.1", path
        assert {"secretRef": {"name": "s3-credentials"}} in container["envFrom"], path
    assert CANARY not in yaml.safe_dump(daskjob)


def test_settings_refuse_what_would_leave_a_zombie_or_fail_later() -> None:
    with pytest.raises(InputError, match="idle_timeout"):
        settings(idle_timeout=0)
    with pytest.raises(InputError, match="minimum"):
        settings(minimum=5, maximum=2)
    with pytest.raises(InputError, match="quantity"):
        kube.PodSize("two", "8Gi")
    with pytest.raises(InputError, match="JUPYTER_IMAGE_SPEC"):
        kube.resolve_settings(
            {"worker": {"cpu": "1", "memory": "1Gi"}, "scheduler": {"cpu": "1", "memory": "1Gi"}},
            {},
            "ns",
        )
    values = {
        "adaptive": {"minimum": 1, "maximum": 3},
        "idle_timeout": 600,
        "worker": {"cpu": "1", "memory": "1Gi"},
        "scheduler": {"cpu": "1", "memory": "1Gi"},
    }
    resolved = kube.resolve_settings(values, {"JUPYTER_IMAGE_SPEC": "quay.io/x/nb:1"}, "jhub")
    assert (resolved.image, resolved.namespace, resolved.minimum, resolved.maximum) == (
        "quay.io/x/nb:1",
        "jhub",
        1,
        3,
    )


def test_owner_comes_from_the_downward_api_or_a_clear_error() -> None:
    owner = kube.PodOwner.from_environ(
        {"HOSTNAME": "jupyter-alice", "CUBEHUB_POD_UID": "u-1"}, "jhub"
    )
    assert owner == kube.PodOwner("jupyter-alice", "u-1", "jhub")
    assert (
        kube.PodOwner.from_environ(
            {"HOSTNAME": "h", "CUBEHUB_POD_NAME": "p", "CUBEHUB_POD_UID": "u"}, "jhub"
        ).name
        == "p"
    )
    with pytest.raises(ClusterError, match=r"CUBEHUB_POD_UID.*metadata\.uid"):
        kube.PodOwner.from_environ({"HOSTNAME": "jupyter-alice"}, "jhub")
    # An owner in another namespace would make the garbage collector delete the cluster at once.
    with pytest.raises(InputError, match="cannot own an object in namespace other"):
        manifests.cluster_spec("cubehub-alice-1", settings(namespace="other"), owner=OWNER)


@pytest.mark.parametrize("user", ["alice", "Very.Long_User-Name" * 4, "émile@example.org", None])
def test_cluster_names_are_always_valid(user: str | None) -> None:
    name = kube.cluster_name(user, "1A2B3C4D5E6F7A8B")
    validate_cluster_name(name)
    assert name.endswith("-1a2b3c4d5e")


def test_names_and_labels_the_operator_would_reject_fail_early() -> None:
    with pytest.raises(InputError, match="not a valid Dask cluster name"):
        kube.check_name("Graz_2022")
    with pytest.raises(InputError, match="label value"):
        kube.labels_for("alice smith", kube.PodTemplate(), "dask")
    with pytest.raises(InputError, match="unknown keys"):
        kube.PodTemplate.from_mapping({"pods": {}})


def test_expired_daskjobs() -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def job(
        name: str, status: str | None, ended: timedelta | None, ttl: str | None = "3600"
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": name,
            "annotations": {manifests.TTL_ANNOTATION: ttl} if ttl else {},
        }
        st: dict[str, Any] = {"jobStatus": status}
        if ended is not None:
            st["endTime"] = (now - ended).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"metadata": meta, "status": st}

    jobs = [
        job("old-success", "Successful", timedelta(hours=2)),
        job("old-failure", "Failed", timedelta(hours=1, seconds=1)),
        job("recent", "Successful", timedelta(minutes=30)),
        job("running", "Running", None),
        job("not-ours", "Successful", timedelta(days=9), ttl=None),
    ]
    assert manifests.expired_daskjobs(jobs, now) == ["old-success", "old-failure"]
