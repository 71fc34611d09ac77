"""The chart renders with real Helm, lints clean, and every manifest passes the API schemas.

Kubernetes objects are checked with kubernetes-validate (strict: unknown fields fail) against
the pinned version in conftest.KUBE_VERSION; the operator's custom resources against the CRDs
shipped with the operator chart, made as strict as the API server's field validation.

The render includes the released JupyterHub chart (test_jupyterhub_renders_the_hub) and the
operator chart.
"""

from __future__ import annotations

import copy
import json
import tarfile
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
from chart_helpers import (
    KUBE_VERSION,
    LINT_VALUES,
    NAMESPACE,
    OLDEST_KUBE_VERSION,
    RELEASE,
    TEST_INSTALL,
    Manifest,
    Render,
    by_kind,
    copy_chart,
    jupyterhub_archive,
    load_yaml,
    merge,
    named,
)
from k8s_rules import pod_specs

WARNING = 2  # helm lint severities: 1 info, 2 warning, 3 error


@pytest.mark.parametrize(
    "values_file", [None, LINT_VALUES, "batch-only"], ids=["defaults", "lint-values", "batch-only"]
)
def test_helm_lint_is_clean(chart_dir: Path, values_file: Path | str | None) -> None:
    values = merge(
        TEST_INSTALL,
        {"jupyterhub": {"enabled": False}}
        if values_file == "batch-only"
        else load_yaml(values_file.read_text())
        if isinstance(values_file, Path)
        else {},
    )
    report = helm.lint(chart_dir, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= WARNING]
    assert report["total_charts_linted"] == 1
    assert not problems and not report["errors"], problems or report["errors"]


def test_lint_flags_missing_dependencies_of_a_bare_checkout(tmp_path: Path) -> None:
    """Without `helm dependency build` Helm says what is missing (the tests fill charts/)."""
    bare = tmp_path / "cubehub"
    copy_chart(bare)  # without any archive downloaded into helm/cubehub/charts
    report = helm.lint(bare)
    messages = " ".join(m["error"] for m in report["messages"])
    assert "missing these dependencies" in messages
    assert "jupyterhub" in messages and "dask-kubernetes-operator" in messages


def _validate_kubernetes(manifests: list[Manifest], kube_version: str = KUBE_VERSION) -> list[str]:
    errors = []
    for manifest in manifests:
        if manifest["apiVersion"].startswith("kubernetes.dask.org/"):
            continue
        try:
            kubernetes_validate.validate(manifest, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            errors.append(
                f"{manifest['kind']}/{manifest['metadata']['name']} {path}: {error.message}"
            )
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(error.message)
    return errors


#: What cubehub's own templates render with the default values (the operator chart adds its own).
CUBEHUB_DEFAULT_OBJECTS = {
    ("ClusterRole", f"cubehub-{NAMESPACE}-hub"),
    ("ClusterRole", f"cubehub-{NAMESPACE}-user"),
    ("ClusterRoleBinding", f"cubehub-{NAMESPACE}-hub"),
    ("ConfigMap", "cubehub-dask-config"),
    ("ConfigMap", "cubehub-env"),
    ("ConfigMap", "cubehub-hub"),
    ("LimitRange", "cubehub-defaults"),
    ("NetworkPolicy", "cubehub-batch"),
    ("NetworkPolicy", "cubehub-dask"),
    ("NetworkPolicy", "cubehub-dask-from-runners"),
    ("RoleBinding", "cubehub-batch"),
    ("ServiceAccount", "cubehub-batch"),
}


def _objects(manifests: list[Manifest]) -> set[tuple[str, str]]:
    return {(m["kind"], m["metadata"]["name"]) for m in manifests}


def _hub_namespace_objects(manifests: list[Manifest]) -> list[Manifest]:
    """The objects the hub writes into each user namespace, as the chart rendered them."""
    data = named(manifests, "ConfigMap", "cubehub-hub")["data"]["hub-settings.json"]
    objects: list[Manifest] = json.loads(data)["namespaceObjects"]
    return objects


@pytest.mark.parametrize("kube_version", [KUBE_VERSION, OLDEST_KUBE_VERSION])
def test_default_manifests_validate_against_kubernetes(
    default_manifests: list[Manifest], kube_version: str
) -> None:
    objects = _objects(default_manifests)
    assert {o for o in objects if o[1].startswith("cubehub")} == CUBEHUB_DEFAULT_OBJECTS
    assert ("Deployment", f"{RELEASE}-dask-kubernetes-operator") in objects
    everything = default_manifests + _hub_namespace_objects(default_manifests)
    assert _validate_kubernetes(everything, kube_version) == []


def test_chart_supports_what_jupyterhub_supports(chart_dir: Path) -> None:
    """kubeVersion is the JupyterHub chart's: cubehub's own objects need no newer API."""
    ours = load_yaml((chart_dir / "Chart.yaml").read_text())["kubeVersion"]
    with tarfile.open(jupyterhub_archive()) as archive:
        member = archive.extractfile("jupyterhub/Chart.yaml")
        assert member is not None
        theirs = load_yaml(member.read().decode())["kubeVersion"]
    assert ours == theirs == f">={OLDEST_KUBE_VERSION}-0"
    report = helm.lint(chart_dir, TEST_INSTALL, strict=True, kube_version=f"v{OLDEST_KUBE_VERSION}")
    assert not report["errors"], report["errors"]


def test_lint_manifests_validate_against_kubernetes(lint_manifests: list[Manifest]) -> None:
    objects = _objects(lint_manifests)
    assert CUBEHUB_DEFAULT_OBJECTS | {
        ("ConfigMap", "cubehub-jobs"),
        ("CronJob", "cubehub-quarterly-composite"),
        ("DaskJob", "cubehub-demo-once"),
    } == {o for o in objects if o[1].startswith("cubehub")}
    assert _validate_kubernetes(lint_manifests + _hub_namespace_objects(lint_manifests)) == []


def test_jupyterhub_renders_the_hub(
    default_manifests: list[Manifest], lint_manifests: list[Manifest]
) -> None:
    """The JupyterHub chart is part of the render, and its objects validate too."""
    for manifests in (default_manifests, lint_manifests):
        objects = _objects(manifests)
        assert {
            ("Deployment", "hub"),
            ("Deployment", "proxy"),
            ("ServiceAccount", "hub"),
            ("Secret", "hub"),
            ("NetworkPolicy", "singleuser"),
        } <= objects
    assert {("StatefulSet", "user-placeholder"), ("Ingress", "jupyterhub")} <= _objects(
        lint_manifests
    )


def test_validation_catches_an_unknown_field(default_manifests: list[Manifest]) -> None:
    """The strict schemas are really applied: a misplaced field fails."""
    account = copy.deepcopy(named(default_manifests, "ServiceAccount", "cubehub-batch"))
    account["metadata"]["annotation"] = {"typo": "x"}
    assert _validate_kubernetes([account]) != []


def _strict(schema: Any) -> Any:
    """A CRD schema with unknown fields rejected, as `kubectl apply --validate=strict` does."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(item) for item in schema]
    return schema


def _crd_validator(chart_dir: Path, kind: str) -> jsonschema.Draft7Validator:
    crds = chart_dir / "charts" / "dask-kubernetes-operator" / "crds"
    crd = load_yaml((crds / f"{kind.lower()}.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    # apiVersion, kind and metadata are checked by the API server itself, not by the CRD.
    schema.setdefault("properties", {}).update(
        {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
        }
    )
    return jsonschema.Draft7Validator(_strict(schema))


def test_dask_jobs_validate_against_the_operator_crd(
    chart_dir: Path, lint_manifests: list[Manifest]
) -> None:
    validator = _crd_validator(chart_dir, "DaskJob")
    (job,) = by_kind(lint_manifests, "DaskJob")
    assert [e.message for e in validator.iter_errors(job)] == []
    # The pods inside are real pod specs: validate them as Pods too.
    for where, spec in pod_specs(job):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": spec}
        assert _validate_kubernetes([pod]) == [], where

    broken = copy.deepcopy(job)
    broken["spec"]["cluster"]["spec"]["worker"]["replica"] = 3
    assert list(validator.iter_errors(broken)), "the strict CRD schema must reject a typo"


def test_dask_pod_template_makes_valid_pods(default_manifests: list[Manifest]) -> None:
    """The template cubehub applies to the Dask pods it requests yields a valid Pod."""
    config = named(default_manifests, "ConfigMap", "cubehub-dask-config")
    template = load_yaml(config["data"]["dask-pod.yaml"])
    assert set(template) == {"labels", "pod", "container"}
    container = {"name": "worker", "image": "cubehub:test", **template["container"]}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "worker", "labels": template["labels"]},
        "spec": {**template["pod"], "containers": [container]},
    }
    assert _validate_kubernetes([pod]) == []


def test_batch_only_release(render: Render) -> None:
    """Without JupyterHub and with the operator from another release: jobs and Dask only."""
    manifests = render(
        {
            "jupyterhub": {"enabled": False},
            "dask-kubernetes-operator": {"enabled": False},
            "jobs": {"nightly": {"schedule": "0 2 * * *", "file": "output: s3://b/x.zarr\n"}},
        }
    )
    names = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    assert ("CronJob", "cubehub-nightly") in names
    assert ("NetworkPolicy", "cubehub-dask") in names and (
        "NetworkPolicy",
        "cubehub-batch",
    ) in names
    assert ("ConfigMap", "cubehub-hub") not in names  # no hub integration
    assert not [name for kind, name in names if kind == "Deployment"]
    # Cluster-wide, only the user ClusterRole, bound in this namespace alone.
    assert [name for kind, name in names if kind.startswith("Cluster")] == [
        f"cubehub-{NAMESPACE}-user"
    ]
    assert _validate_kubernetes(manifests) == []


def test_notes_tell_the_operator_what_to_do_next(
    chart: helm.Chart, lint_values: dict[str, Any]
) -> None:
    notes = chart.render(TEST_INSTALL, name="eo", namespace="cubehub")[
        "cubehub/templates/NOTES.txt"
    ]
    assert "a namespace of their own (" + "{hubnamespace}-{username})" in notes
    assert "no object-store credentials" in notes  # default: neither identity nor Secret
    assert "API server's address is unknown" in notes  # `helm template`: nothing to discover
    assert "authentication.allowDummy is set" in notes
    assert "port-forward service/proxy-public" in notes  # no public address by default
    assert "import cubehub\n     with cubehub.cluster() as client" in notes
    notes = chart.render(lint_values, name="eo", namespace="cubehub")["cubehub/templates/NOTES.txt"]
    assert "no object-store credentials" not in notes and "address is unknown" not in notes
    assert "allowDummy" not in notes
    assert "create job --from=cronjob/cubehub-quarterly-composite" in notes
    assert "get daskjob cubehub-demo-once" in notes


def test_batch_runners_run_under_tini(lint_manifests: list[Manifest]) -> None:
    """Runner containers set args, not command: the image's entrypoint (tini) stays PID 1."""
    cron = named(lint_manifests, "CronJob", "cubehub-quarterly-composite")
    job = named(lint_manifests, "DaskJob", "cubehub-demo-once")
    for spec in (
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        job["spec"]["job"]["spec"],
    ):
        (container,) = spec["containers"]
        assert "command" not in container
        assert container["args"][:2] == ["cubehub", "run"]


def test_dask_jobs_have_a_deadline(
    lint_values: dict[str, Any], lint_manifests: list[Manifest]
) -> None:
    """The operator gives a DaskJob's cluster no idleTimeout: the runner's deadline bounds it."""
    job = named(lint_manifests, "DaskJob", "cubehub-demo-once")
    assert (
        job["spec"]["job"]["spec"]["activeDeadlineSeconds"]
        == lint_values["batch"]["activeDeadlineSeconds"]
    )


def test_cron_runs_own_the_clusters_they_start(lint_manifests: list[Manifest]) -> None:
    cron = named(lint_manifests, "CronJob", "cubehub-quarterly-composite")
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [
        "cubehub", "run", "/etc/cubehub/jobs/quarterly-composite.yaml",
    ]  # fmt: skip
    env = {e["name"]: e for e in container["env"]}
    assert env["CUBEHUB_POD_UID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.uid"}}
    assert env["DASK_CUBEHUB__CLUSTER__KUBERNETES__IMAGE"]["value"] == (
        "registry.example.org/eo/cubehub:2026.11.0"
    )
    files = named(lint_manifests, "ConfigMap", "cubehub-jobs")["data"]
    assert set(files) == {"quarterly-composite.yaml", "demo-once.yaml"}
    assert load_yaml(files["quarterly-composite.yaml"])["output"].startswith("s3://")
