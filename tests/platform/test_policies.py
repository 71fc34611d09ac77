"""Policy checks over the rendered manifests: pod security, resources, RBAC, secrets, network.

The notebook pods are not rendered by Helm (KubeSpawner creates them), so the tests build their
security settings the way KubeSpawner does from the chart's values, and run cubehub's hub
integration file (files/hub/cubehub_spawner.py) as the JupyterHub chart runs it. All of this
runs with the JupyterHub stand-in (chart_helpers.py); the pods and policies JupyterHub's own
chart renders are checked too when it has been downloaded.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_helpers import (
    HAVE_JUPYTERHUB,
    NAMESPACE,
    RELEASE,
    STAND_IN_HUB_ACCOUNT,
    Manifest,
    Render,
    by_kind,
    load_yaml,
    merge,
    named,
    needs_jupyterhub,
)
from k8s_rules import (
    Endpoint,
    connection_allowed,
    containers,
    pod,
    pod_specs,
    restricted_violations,
)
from traitlets.config import Config

HUB_FILE = Path(__file__).resolve().parents[2] / "helm/cubehub/files/hub/cubehub_spawner.py"


@pytest.fixture(params=["defaults", "lint-values"])
def manifests(
    request: pytest.FixtureRequest,
    default_manifests: list[Manifest],
    lint_manifests: list[Manifest],
) -> list[Manifest]:
    return default_manifests if request.param == "defaults" else lint_manifests


# --- pod security and resources ------------------------------------------------------------


def test_every_rendered_pod_is_restricted(manifests: list[Manifest]) -> None:
    problems = {
        where: found
        for manifest in manifests
        for where, spec in pod_specs(manifest)
        if (found := restricted_violations(spec))
    }
    assert problems == {}
    checked = {where for m in manifests for where, _ in pod_specs(m)}
    assert f"Deployment/{RELEASE}-dask-kubernetes-operator" in checked
    if HAVE_JUPYTERHUB:
        assert {"Deployment/hub", "Deployment/proxy"} <= checked


def test_the_restricted_check_catches_violations() -> None:
    spec = {
        "hostNetwork": True,
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"privileged": True}}],
    }
    found = " ".join(restricted_violations(spec))
    for expected in ("hostNetwork", "hostPath", "privileged", "runAsNonRoot", "seccomp", "ALL"):
        assert expected in found


def _notebook_pod(jupyterhub: dict[str, Any]) -> dict[str, Any]:
    """The security-relevant part of the pod KubeSpawner 7 builds from these values.

    KubeSpawner puts uid/fsGid/allowPrivilegeEscalation into the security contexts and then
    applies pod_security_context and container_security_context over them; with
    cloudMetadata.blockWithIptables it adds a privileged init container. Without JupyterHub's
    chart its defaults are not merged in: allowPrivilegeEscalation is then KubeSpawner's own
    default, false (cubehub's container_security_context sets it anyway).
    """
    singleuser, spawner = jupyterhub["singleuser"], jupyterhub["hub"]["config"]["KubeSpawner"]
    container_sc = {
        "runAsUser": singleuser["uid"],
        "allowPrivilegeEscalation": singleuser.get("allowPrivilegeEscalation", False),
        **spawner.get("container_security_context", {}),
    }
    init = []
    if singleuser["cloudMetadata"]["blockWithIptables"]:
        init = [{"name": "block-cloud-metadata", "securityContext": {"privileged": True}}]
    return {
        "securityContext": {
            "fsGroup": singleuser["fsGid"],
            **spawner.get("pod_security_context", {}),
        },
        "initContainers": init,
        "containers": [{"name": "notebook", "securityContext": container_sc}],
        "volumes": [
            {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}},
            {"name": "cubehub-dask-config", "configMap": {"name": "cubehub-dask-config"}},
        ],
    }


def test_notebook_pods_are_restricted(chart: helm.Chart, lint_values: dict[str, Any]) -> None:
    for values in (None, lint_values):
        jupyterhub = chart.merge_values(values)["jupyterhub"]
        assert restricted_violations(_notebook_pod(jupyterhub)) == []
    # and the check is live: JupyterHub's default iptables init container would break it
    jupyterhub = chart.merge_values(
        {"jupyterhub": {"singleuser": {"cloudMetadata": {"blockWithIptables": True}}}}
    )["jupyterhub"]
    assert restricted_violations(_notebook_pod(jupyterhub)) != []


def test_dask_pods_from_the_template_are_restricted(manifests: list[Manifest]) -> None:
    template = load_yaml(
        named(manifests, "ConfigMap", "cubehub-dask-config")["data"]["dask-pod.yaml"]
    )
    spec = {**template["pod"], "containers": [{"name": "worker", **template["container"]}]}
    assert restricted_violations(spec) == []


def test_every_container_has_cpu_and_memory_requests_and_limits(manifests: list[Manifest]) -> None:
    missing = [
        f"{where}: {container['name']} {part}.{resource}"
        for manifest in manifests
        for where, spec in pod_specs(manifest)
        for container in containers(spec)
        for part in ("requests", "limits")
        for resource in ("cpu", "memory")
        if resource not in (container.get("resources") or {}).get(part, {})
    ]
    assert missing == []


def test_notebook_pods_have_requests_and_limits(chart: helm.Chart) -> None:
    singleuser = chart.merge_values(None)["jupyterhub"]["singleuser"]
    for resource in ("cpu", "memory"):
        assert singleuser[resource]["guarantee"] and singleuser[resource]["limit"]
    # A profile that resizes the pod sets all four (the others keep the defaults above).
    for profile in singleuser["profileList"]:
        sizes = {"cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit"}
        overridden = sizes & set(profile.get("kubespawner_override", {}))
        assert overridden in (set(), sizes), profile["display_name"]


# --- RBAC ----------------------------------------------------------------------------------

#: What a KubeCluster needs in its namespace (dask-kubernetes #921, #582), and nothing more.
USER_RULES = {
    ("kubernetes.dask.org", resource, verb)
    for resource in (
        "daskclusters",
        "daskworkergroups",
        "daskworkergroups/scale",
        "daskjobs",
        "daskautoscalers",
    )
    for verb in ("get", "list", "watch", "patch", "create", "delete")
} | {
    ("", resource, verb)
    for resource in ("pods", "pods/status", "services")
    for verb in ("get", "list", "watch")
}


def _grants(role: Manifest) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_user_role_grants_exactly_what_kubecluster_needs(manifests: list[Manifest]) -> None:
    role = named(manifests, "Role", "cubehub-user")
    assert _grants(role) == USER_RULES
    binding = named(manifests, "RoleBinding", "cubehub-user")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "cubehub-user",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cubehub-user", "namespace": NAMESPACE}
    ]
    # No other binding, namespaced or cluster-wide, gives the user account anything more.
    others = [
        b["metadata"]["name"]
        for b in by_kind(manifests, "RoleBinding") + by_kind(manifests, "ClusterRoleBinding")
        if b is not binding and any(s.get("name") == "cubehub-user" for s in b["subjects"])
    ]
    assert others == []


def test_hub_may_only_write_network_policies(manifests: list[Manifest]) -> None:
    role = named(manifests, "Role", "cubehub-hub")
    assert _grants(role) == {
        ("networking.k8s.io", "networkpolicies", v) for v in ("get", "create", "update")
    }
    binding = named(manifests, "RoleBinding", "cubehub-hub")
    # The account the JupyterHub chart gives its hub: the one it renders, or the stand-in's name.
    hub_account = (
        named(manifests, "ServiceAccount", "hub")["metadata"]["name"]
        if HAVE_JUPYTERHUB
        else STAND_IN_HUB_ACCOUNT
    )
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": hub_account, "namespace": NAMESPACE}
    ]


# --- secrets -------------------------------------------------------------------------------

CANARY = "c4n4ry0f7h3s3cr3t5"


@needs_jupyterhub  # the secrets given here are JupyterHub's, stored by its chart
def test_secret_values_given_at_install_appear_only_in_secret_data(
    render: Render, chart: helm.Chart, lint_values: dict[str, Any]
) -> None:
    # As `helm install --set-string …` would pass them: the authenticator's client secret, the
    # proxy token and the cookie secret of JupyterHub.
    secrets = {
        "jupyterhub": {
            "hub": {
                "cookieSecret": CANARY.encode().hex(),
                "config": {
                    "JupyterHub": {"authenticator_class": "generic-oauth"},
                    "GenericOAuthenticator": {"client_id": "cubehub", "client_secret": CANARY},
                },
            },
            "proxy": {"secretToken": CANARY + "-proxy"},
        }
    }
    values = merge(lint_values, secrets)
    manifests = render(values)
    canaries = (CANARY, CANARY.encode().hex())
    leaks, found_in = [], []
    for manifest in manifests:
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        if manifest["kind"] == "Secret":
            decoded = [base64.b64decode(v).decode() for v in manifest.get("data", {}).values()]
            plain = list(manifest.get("stringData", {}).values())
            if any(c in text for c in canaries for text in decoded + plain):
                found_in.append(where)
            manifest = {k: v for k, v in manifest.items() if k not in ("data", "stringData")}
        text = yaml.safe_dump(manifest)
        leaks += [
            where for c in canaries if c in text or base64.b64encode(c.encode()).decode() in text
        ]
    notes = chart.render(values, name=RELEASE, namespace=NAMESPACE)["cubehub/templates/NOTES.txt"]
    assert CANARY not in notes
    assert leaks == []
    assert found_in, "the canary should be stored in a Secret"


# --- the hub integration -------------------------------------------------------------------


def _run_hub_file(
    manifests: list[Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Config, dict[str, Any]]:
    """Execute cubehub_spawner.py as the JupyterHub chart does, after its own KubeSpawner config."""
    data = named(manifests, "ConfigMap", "cubehub-hub")["data"]
    settings = tmp_path / "hub-settings.json"
    settings.write_text(data["hub-settings.json"])
    monkeypatch.setenv("CUBEHUB_HUB_SETTINGS", str(settings))
    c = Config()
    # What jupyterhub_config.py set before it loads jupyterhub_config.d (storage, labels).
    c.KubeSpawner.volumes = [
        {"name": "home", "persistentVolumeClaim": {"claimName": "claim-{username}"}}
    ]
    c.KubeSpawner.volume_mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
    c.KubeSpawner.extra_labels = {"hub.jupyter.org/network-access-hub": "true"}
    namespace: dict[str, Any] = {"c": c, "__name__": "jupyterhub_config"}
    exec(compile(data["cubehub_spawner.py"], "cubehub_spawner.py", "exec"), namespace)
    return c, namespace


def test_hub_file_in_the_configmap_is_the_chart_file(default_manifests: list[Manifest]) -> None:
    data = named(default_manifests, "ConfigMap", "cubehub-hub")["data"]
    assert data["cubehub_spawner.py"].strip() == HUB_FILE.read_text().strip()


def test_hub_integration_configures_notebook_pods(
    lint_manifests: list[Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, _ = _run_hub_file(lint_manifests, tmp_path, monkeypatch)
    spawner = c.KubeSpawner
    assert spawner.service_account == "cubehub-user"
    assert [v["name"] for v in spawner.volumes] == ["home", "cubehub-dask-config"]
    assert {m["mountPath"] for m in spawner.volume_mounts} == {
        "/home/jovyan",
        "/etc/dask/cubehub.yaml",
        "/etc/cubehub/dask-pod.yaml",
    }
    assert spawner.extra_labels == {
        "hub.jupyter.org/network-access-hub": "true",
        "cubehub.io/user": "{username}",
    }
    environment = spawner.environment.to_dict()["update"]
    assert environment["CUBEHUB_USER"] == "{username}"
    assert environment["CUBEHUB_DASK_POD_TEMPLATE"] == "/etc/cubehub/dask-pod.yaml"
    for name, field in (("CUBEHUB_POD_NAME", "metadata.name"), ("CUBEHUB_POD_UID", "metadata.uid")):
        assert environment[name] == {"valueFrom": {"fieldRef": {"fieldPath": field}}}
    assert spawner.extra_container_config.to_dict()["update"]["envFrom"] == [
        {"configMapRef": {"name": "cubehub-env"}},
        {"secretRef": {"name": "cubehub-object-store"}},
    ]
    assert callable(spawner.modify_pod_hook)


def test_hub_writes_no_policies_when_network_policies_are_off(
    render: Render, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render({"networkPolicy": {"enabled": False}})
    assert by_kind(manifests, "NetworkPolicy") == [
        m
        for m in manifests
        if m["kind"] == "NetworkPolicy" and not m["metadata"]["name"].startswith("cubehub")
    ]
    c, _ = _run_hub_file(manifests, tmp_path, monkeypatch)
    assert "modify_pod_hook" not in c.KubeSpawner


# --- network policies ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def operator_builders() -> Any:
    """The operator's own pod builders, so Dask pods carry the labels the operator gives them."""
    from dask_kubernetes.operator.controller import controller

    return controller


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _user_cluster(
    operator: Any, user: str, template: dict[str, Any], ip: int
) -> dict[str, Endpoint]:
    """Scheduler and worker of a cluster cubehub starts for ``user``: the DaskCluster carries
    the template's labels plus cubehub.io/user, and the operator copies them onto the pods."""
    name = f"dask-{user}-0123456789"
    labels = {**template["labels"], "cubehub.io/user": user}
    scheduler = operator.build_scheduler_deployment_spec(name, {"containers": []}, {}, labels)
    worker = operator.build_worker_deployment_spec(
        f"{name}-default", NAMESPACE, name, "abc12", {"containers": []}, {}, labels
    )
    return {
        "scheduler": pod(f"10.244.1.{ip}", NAMESPACE, _pod_labels(scheduler)),
        "worker": pod(f"10.244.1.{ip + 1}", NAMESPACE, _pod_labels(worker)),
    }


def _notebook(user: str, ip: int) -> Endpoint:
    """A notebook pod with the labels KubeSpawner gives it (common, extra and cubehub's)."""
    labels = {
        "app": "jupyterhub",
        "component": "singleuser-server",
        "release": RELEASE,
        "hub.jupyter.org/username": user,
        "hub.jupyter.org/network-access-hub": "true",
        "cubehub.io/user": user,
    }
    return pod(f"10.244.2.{ip}", NAMESPACE, labels, {"notebook-port": 8888})


@pytest.fixture
def network(
    lint_manifests: list[Manifest],
    operator_builders: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[Manifest], dict[str, Endpoint]]:
    """Every policy in force (rendered + the per-user ones the hub writes) and the pods."""
    _, hub = _run_hub_file(lint_manifests, tmp_path, monkeypatch)
    settings = json.loads(
        named(lint_manifests, "ConfigMap", "cubehub-hub")["data"]["hub-settings.json"]
    )
    per_user = [hub["cubehub_user_scheduler_policy"](user, settings) for user in ("alice", "bob")]
    policies = [
        {**p, "metadata": {**p["metadata"], "namespace": NAMESPACE}}
        for p in by_kind(lint_manifests, "NetworkPolicy") + per_user
    ]

    template = load_yaml(
        named(lint_manifests, "ConfigMap", "cubehub-dask-config")["data"]["dask-pod.yaml"]
    )
    alice, bob = (
        _user_cluster(operator_builders, "alice", template, 10),
        _user_cluster(operator_builders, "bob", template, 20),
    )

    (job,) = by_kind(lint_manifests, "DaskJob")
    job_labels = {**job["metadata"]["labels"], **job["spec"]["job"]["metadata"]["labels"]}
    runner = operator_builders.build_job_pod_spec(
        job["metadata"]["name"],
        job["metadata"]["name"],
        NAMESPACE,
        job["spec"]["job"]["spec"],
        {},
        job_labels,
    )
    cron = named(lint_manifests, "CronJob", "cubehub-quarterly-composite")
    cron_labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    pods = {
        "alice-notebook": _notebook("alice", 1),
        "bob-notebook": _notebook("bob", 2),
        "alice-scheduler": alice["scheduler"],
        "alice-worker": alice["worker"],
        "bob-scheduler": bob["scheduler"],
        "bob-worker": bob["worker"],
        "job-runner": pod("10.244.3.1", NAMESPACE, runner["metadata"]["labels"]),
        "cron-runner": pod("10.244.3.2", NAMESPACE, cron_labels),
        "hub": pod(
            "10.244.3.3", NAMESPACE, {"app": "jupyterhub", "component": "hub", "release": RELEASE}
        ),
        "other-namespace": pod("10.244.4.1", "default", {"app": "anything"}),
        "operator": pod(
            "10.244.3.4", NAMESPACE, {"app.kubernetes.io/name": "dask-kubernetes-operator"}
        ),
        "fake-operator": pod(
            "10.244.4.2", "default", {"app.kubernetes.io/name": "dask-kubernetes-operator"}
        ),
        "api-server": Endpoint(ip="10.0.0.1"),
        "s3": Endpoint(ip="52.219.170.1"),
        "private-db": Endpoint(ip="10.20.30.40"),
        "metadata-server": Endpoint(ip="169.254.169.254"),
    }
    return policies, pods


ALLOWED = [
    ("alice-notebook", "alice-scheduler", 8786),  # the client talks to its own scheduler
    ("alice-notebook", "alice-scheduler", 8787),  # and shows its dashboard via the proxy
    ("bob-notebook", "bob-scheduler", 8786),
    ("alice-worker", "alice-scheduler", 8786),  # workers and scheduler, any port
    ("alice-scheduler", "alice-worker", 40123),
    ("alice-worker", "alice-worker", 40123),  # workers share data
    ("alice-worker", "s3", 443),  # object storage
    ("job-runner", "alice-scheduler", 8786),  # batch runners drive their clusters
    ("cron-runner", "bob-scheduler", 8786),
    ("cron-runner", "api-server", 443),  # a CronJob run creates its own cluster
    ("alice-notebook", "api-server", 443),  # so does a notebook
    pytest.param(  # JupyterHub's own policy allows public addresses
        "alice-notebook", "s3", 443, marks=needs_jupyterhub, id="alice-notebook-s3-443"
    ),
    ("operator", "alice-scheduler", 8787),  # the operator checks idleness, retires workers
    ("operator", "bob-scheduler", 8786),
]
DENIED = [
    ("alice-notebook", "bob-scheduler", 8786),  # another user's scheduler
    ("alice-notebook", "bob-scheduler", 8787),  # and its dashboard
    ("bob-notebook", "alice-scheduler", 8786),
    ("alice-notebook", "alice-worker", 40123),  # a notebook only needs its scheduler
    ("hub", "alice-scheduler", 8786),  # no other pod reaches a scheduler
    ("other-namespace", "alice-scheduler", 8786),
    ("alice-worker", "private-db", 5432),  # workers reach no private address
    ("alice-worker", "metadata-server", 80),  # nor the cloud metadata server
    ("alice-worker", "api-server", 443),  # nor the Kubernetes API
    ("alice-worker", "alice-notebook", 8888),  # nor notebooks
    ("alice-notebook", "metadata-server", 80),
    ("alice-notebook", "private-db", 5432),
    ("s3", "alice-scheduler", 8786),  # nothing outside the cluster reaches Dask
    ("other-namespace", "job-runner", 8080),  # batch runners accept no connection
    ("fake-operator", "alice-scheduler", 8787),  # the operator's labels, elsewhere: no
    ("operator", "alice-worker", 8788),  # the operator needs only the scheduler
]


@pytest.mark.parametrize(("source", "destination", "port"), ALLOWED)
def test_network_allows(
    network: tuple[list[Manifest], dict[str, Endpoint]], source: str, destination: str, port: int
) -> None:
    policies, pods = network
    assert connection_allowed(policies, pods[source], pods[destination], port)


@pytest.mark.parametrize(("source", "destination", "port"), DENIED)
def test_network_denies(
    network: tuple[list[Manifest], dict[str, Endpoint]], source: str, destination: str, port: int
) -> None:
    policies, pods = network
    assert not connection_allowed(policies, pods[source], pods[destination], port)


def test_without_the_hub_policy_no_notebook_reaches_a_scheduler(
    network: tuple[list[Manifest], dict[str, Endpoint]],
) -> None:
    """The per-user policy is what opens the path: the rendered ones alone keep it shut."""
    policies, pods = network
    rendered = [p for p in policies if not p["metadata"]["name"].startswith("cubehub-dask-")]
    assert not connection_allowed(rendered, pods["alice-notebook"], pods["alice-scheduler"], 8786)


# --- workload identity ---------------------------------------------------------------------

IDENTITIES: dict[str, tuple[dict[str, Any], dict[str, str], dict[str, str]]] = {
    "aws": ({"aws": {"roleArn": "arn:aws:iam::123456789012:role/cubehub"}},
            {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/cubehub"}, {}),
    "gcp": ({"gcp": {"serviceAccount": "cubehub@eo-project.iam.gserviceaccount.com"}},
            {"iam.gke.io/gcp-service-account": "cubehub@eo-project.iam.gserviceaccount.com"}, {}),
    "azure": ({"azure": {"clientId": "00000000-1111-2222-3333-444444444444"}},
              {"azure.workload.identity/client-id": "00000000-1111-2222-3333-444444444444"},
              {"azure.workload.identity/use": "true"}),
}  # fmt: skip


@pytest.mark.parametrize("provider", sorted(IDENTITIES))
def test_workload_identity(render: Render, lint_values: dict[str, Any], provider: str) -> None:
    settings, annotations, pod_labels = IDENTITIES[provider]
    values = merge(lint_values, {"workloadIdentity": {"provider": provider, **settings}})
    values["objectStore"]["existingSecret"] = ""
    manifests = render(values)
    account = named(manifests, "ServiceAccount", "cubehub-user")
    assert account["metadata"]["annotations"] == {"example.org/owner": "eo-team", **annotations}
    template = load_yaml(
        named(manifests, "ConfigMap", "cubehub-dask-config")["data"]["dask-pod.yaml"]
    )
    assert template["pod"]["serviceAccountName"] == "cubehub-user"
    assert template["container"]["envFrom"] == [{"configMapRef": {"name": "cubehub-env"}}]
    cron = named(manifests, "CronJob", "cubehub-quarterly-composite")["spec"]["jobTemplate"][
        "spec"
    ]["template"]
    for key, value in pod_labels.items():
        assert template["labels"][key] == value
        assert cron["metadata"]["labels"][key] == value
    for policy in ("cubehub-dask", "cubehub-notebook", "cubehub-batch"):
        gke_metadata = any(
            rule.get("to") == [{"ipBlock": {"cidr": "169.254.169.254/32"}}]
            for rule in named(manifests, "NetworkPolicy", policy)["spec"]["egress"]
        )
        assert gke_metadata == (provider == "gcp"), policy
