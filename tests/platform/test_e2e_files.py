"""The end-to-end workflow's inputs are checked here, since the workflow itself needs Docker.

Its values render with the chart, its extra manifests pass the API schemas and the restricted
profile, and the workflow wires the steps in the order the run needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_helpers import KUBE_VERSION, Render, load_yaml, named
from k8s_rules import pod_specs, restricted_violations

E2E = Path(__file__).resolve().parents[2] / ".github" / "workflows"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml((E2E / "platform.yml").read_text())
    return loaded


def test_e2e_values_render_a_restricted_daskjob(render: Render) -> None:
    values = load_yaml((E2E / "e2e" / "values.yaml").read_text())
    values["jobs"] = {"demo": {"file": "stac_api: http://stac\noutput: s3://outputs/demo.zarr\n"}}
    manifests = render(values)
    job = named(manifests, "DaskJob", "cubehub-demo")
    for where, spec in pod_specs(job):
        assert restricted_violations(spec) == [], where
        for container in spec["containers"]:
            assert container["image"] == "cubehub:e2e" and container["imagePullPolicy"] == "Never"
    env = {e["name"]: e["value"] for e in job["spec"]["job"]["spec"]["containers"][0]["env"]}
    assert env["DASK_CUBEHUB__CLUSTER__ADDRESS"].startswith("tcp://cubehub-demo-scheduler.")
    assert named(manifests, "ConfigMap", "cubehub-jobs")["data"]["demo.yaml"].startswith(
        "stac_api:"
    )


def test_demo_data_manifests_are_valid_and_restricted() -> None:
    text = (E2E / "e2e" / "demo-data.yaml").read_text()
    documents = [d for d in yaml.load_all(text, Loader=yaml.CSafeLoader) if d]
    assert {d["kind"] for d in documents} == {"Namespace", "Deployment", "Service"}
    for document in documents:
        kubernetes_validate.validate(document, KUBE_VERSION, strict=True)
        for where, spec in pod_specs(document):
            assert restricted_violations(spec) == [], where


def test_workflow_tests_with_the_downloaded_jupyterhub_chart(workflow: dict[str, Any]) -> None:
    """CI downloads the chart's dependencies first, then runs the suite as .ci/run does."""
    steps = workflow["jobs"]["tests"]["steps"]
    runs = [str(step.get("run", "")) for step in steps]
    download = next(i for i, run in enumerate(runs) if "helm dependency update helm/cubehub" in run)
    test = next(i for i, run in enumerate(runs) if ".ci/run" in run)
    assert download < test
    assert any("setup-helm" in str(step.get("uses", "")) for step in steps[:download])


def test_workflow_runs_tests_then_builds_installs_runs_and_checks(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    assert jobs["e2e"]["needs"] == "tests"
    steps = jobs["e2e"]["steps"]
    text = [
        str(step.get("run", "")) + str(step.get("uses", "")) + str(step.get("with", ""))
        for step in steps
    ]

    def first(fragment: str) -> int:
        return next(i for i, t in enumerate(text) if fragment in t)

    order = [
        first("docker/Dockerfile"),  # build the image
        first("helm/kind-action"),  # start kind
        first("kind load docker-image cubehub:e2e"),
        first("prepare_demo.py"),  # demo archive into the cluster's S3
        first("helm install cubehub helm/cubehub"),
        first("get daskjob cubehub-demo"),
        first("check_output.py"),
    ]
    assert order == sorted(order)
    assert all(step.get("if") == "failure()" for step in steps[-1:])
