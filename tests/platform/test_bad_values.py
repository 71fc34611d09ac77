"""Bad values are refused before anything is installed, with a message that says what to fix.

The schema (values.schema.json, and JupyterHub's own for its block) rejects unknown keys and
malformed values; the chart's checks (cubehub.validate in _helpers.tpl) reject what a schema
cannot express, such as a limit below its request.
"""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import pytest
from chart_helpers import CHART, TEST_INSTALL, Render

from cubehub.credentials import SECRET_NAME_PATTERN, is_secret_name

CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "missing image tag": ({"image": {"tag": ""}}, ["/image/tag"]),
    "null image tag": ({"image": {"tag": None}}, ["/image", "tag"]),
    "unknown top-level key": ({"imageTag": "1.0"}, ["imageTag", "not allowed"]),
    "unknown nested key": ({"dask": {"worker": {"gpus": 1}}}, ["/dask/worker", "gpus"]),
    "unknown JupyterHub key": ({"jupyterhub": {"hub": {"replica": 2}}}, ["jupyterhub", "replica"]),
    "cpu limit below request": (
        {"batch": {"resources": {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "1500m", "memory": "2Gi"}}}},
        ["batch.resources.limits.cpu", "1500m", "below the request 2"],
    ),
    "memory limit below request": (
        {"batch": {"resources": {"requests": {"cpu": "1", "memory": "3Gi"}, "limits": {"cpu": "1", "memory": "2000Mi"}}}},
        ["batch.resources.limits.memory", "2000Mi", "3Gi"],
    ),
    "operator limit below request": (
        {"dask-kubernetes-operator": {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}}},
        ["dask-kubernetes-operator.resources.limits.cpu"],
    ),
    "notebook memory limit below guarantee": (
        {"jupyterhub": {"singleuser": {"memory": {"guarantee": "8G", "limit": "4G"}}}},
        ["jupyterhub.singleuser.memory.limit", "4G", "8G"],
    ),
    "profile limit below guarantee": (
        {"jupyterhub": {"singleuser": {"profileList": [{"display_name": "huge", "kubespawner_override": {"cpu_guarantee": 8, "cpu_limit": 4, "mem_guarantee": "1G", "mem_limit": "2G"}}]}}},
        ["profileList[huge]", "cpu_limit"],
    ),
    "not a quantity": ({"dask": {"worker": {"memory": "lots"}}}, ["/dask/worker/memory", "lots"]),
    "zero worker memory": ({"dask": {"worker": {"memory": "0"}}}, ["dask.worker.memory must be above 0"]),
    "adaptive bounds reversed": ({"dask": {"adaptive": {"minimum": 9, "maximum": 2}}}, ["dask.adaptive.minimum (9)"]),
    "credential in a values file": (
        {"objectStore": {"env": {"AWS_SECRET_ACCESS_KEY": "abc"}}},
        ["objectStore.env.AWS_SECRET_ACCESS_KEY", "objectStore.existingSecret"],
    ),
    "workload identity without role": ({"workloadIdentity": {"provider": "aws"}}, ["workloadIdentity.aws.roleArn"]),
    "unknown identity provider": ({"workloadIdentity": {"provider": "ibm"}}, ["/workloadIdentity/provider"]),
    "notebook image differs": (
        {"image": {"tag": "0.2.0"}},
        ["jupyterhub.singleuser.image", "0.2.0", "same name and tag"],
    ),
    "hub integration unmounted": ({"jupyterhub": {"hub": {"extraVolumes": []}}}, ["cubehub-hub", "extraVolumes"]),
    "job name not a DNS label": ({"jobs": {"Daily_Run": {"file": "x: 1"}}}, ["/jobs", "Daily_Run"]),
    "job without a file": ({"jobs": {"daily": {"schedule": "0 3 * * *"}}}, ["/jobs/daily", "file"]),
    "bad cron schedule": ({"jobs": {"daily": {"file": "x: 1", "schedule": "every day"}}}, ["/jobs/daily/schedule"]),
    "security context weakened": (
        {"securityContext": {"container": {"allowPrivilegeEscalation": True}}},
        ["/securityContext/container/allowPrivilegeEscalation"],
    ),
    "idle timeout zero": ({"dask": {"idleTimeout": 0}}, ["/dask/idleTimeout", "minimum"]),
    "azure account key in a values file": (
        {"objectStore": {"env": {"AZURE_STORAGE_ACCOUNT_KEY": "abc"}}},
        ["objectStore.env.AZURE_STORAGE_ACCOUNT_KEY", "objectStore.existingSecret"],
    ),
    "azure connection string in a values file": (
        {"objectStore": {"env": {"AZURE_STORAGE_CONNECTION_STRING": "abc"}}},
        ["objectStore.env.AZURE_STORAGE_CONNECTION_STRING"],
    ),
    "worker above the container maximum": (
        {"dask": {"worker": {"cpu": "96"}}}, ["limitRange.max.cpu (for dask.worker.cpu)", "96"],
    ),
    "quota not a quantity": ({"users": {"quota": {"cpu": "lots"}}}, ["/users/quota/cpu"]),
    "pull secret not given to notebooks": (
        {"image": {"pullSecrets": ["registry"]}}, ["jupyterhub.singleuser.image.pullSecrets", "registry"],
    ),
    "dask taint the pre-puller does not tolerate": (
        {"dask": {"worker": {"tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]}}},
        ["dask.worker.tolerations", "jupyterhub.prePuller.extraTolerations"],
    ),
    "hub closed to other namespaces": (
        {"jupyterhub": {"hub": {"networkPolicy": {"interNamespaceAccessLabels": "ignore"}}}},
        ["interNamespaceAccessLabels", "accept"],
    ),
    "limit range reversed": (
        {"limitRange": {"default": {"cpu": "100m", "memory": "1Gi"}, "defaultRequest": {"cpu": "1", "memory": "1Gi"}}},
        ["limitRange.limits.cpu"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_values_are_rejected_with_a_useful_message(render: Render, case: str) -> None:
    values, fragments = CASES[case]
    with pytest.raises((helm.HelmValuesError, helm.HelmRenderError)) as raised:
        render(values)
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, message


def test_the_dummy_authenticator_needs_an_explicit_opt_in(render: Render) -> None:
    """JupyterHub's default lets anyone in: a default install fails, saying what to do."""
    with pytest.raises(helm.HelmRenderError) as raised:
        render(None, test_install=False)
    assert 'authenticator_class is "dummy"' in str(raised.value)
    assert "authentication.allowDummy=true" in str(raised.value)
    render(TEST_INSTALL, test_install=False)  # the opt-in


def test_the_chart_refuses_the_same_credential_names_as_cubehub(render: Render) -> None:
    """One pattern for credentials: the chart's is cubehub's (cubehub.credentials)."""
    template = (CHART / "templates" / "_helpers.tpl").read_text()
    found = re.search(r'define "cubehub.secretNamePattern" -}}\n(.*)\n', template)
    assert found is not None
    assert found.group(1) == f"(?i){SECRET_NAME_PATTERN}"
    for name in ("AZURE_STORAGE_SAS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS", "AWS_SESSION_TOKEN"):
        assert is_secret_name(name)
        with pytest.raises(helm.HelmRenderError, match=f"objectStore.env.{name}"):
            render({"objectStore": {"env": {name: "x"}}})


def test_good_values_that_look_alike_pass(render: Render) -> None:
    """The checks compare quantities, not strings: 1500m < 2 and 2048Mi == 2Gi are fine."""
    resources = {
        "requests": {"cpu": "1500m", "memory": "2048Mi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    manifests = render(
        {"batch": {"resources": resources}, "objectStore": {"env": {"AWS_REGION": "eu-west-1"}}}
    )
    assert any(
        m["kind"] == "ConfigMap" and m["data"] == {"AWS_REGION": "eu-west-1"} for m in manifests
    )
