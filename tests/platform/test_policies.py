"""Policy checks over the rendered manifests: pod security, resources, RBAC, secrets, network.

The notebook pods are not rendered by Helm (KubeSpawner creates them), so the tests build their
security settings the way KubeSpawner does from the chart's values, and run cubehub's hub
integration file (files/hub/cubehub_spawner.py) as the JupyterHub chart runs it. The pods and
policies the JupyterHub chart renders are checked with cubehub's own.
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
    NAMESPACE,
    RELEASE,
    Manifest,
    Render,
    by_kind,
    in_release_namespace,
    load_yaml,
    merge,
    named,
)
from k8s_rules import (
    Endpoint,
    Request,
    connection_allowed,
    containers,
    pod,
    pod_specs,
    rbac_allows,
    restricted_violations,
)
from test_hub_boot import boot_hub

from cubehub.clusters.kube import PodTemplate, labels_for

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


def test_notebook_pods_are_restricted_and_the_check_is_live(
    booted: dict[str, Any], render: Render, lint_values: dict[str, Any], tmp_path: Path
) -> None:
    """The pods KubeSpawner builds meet the restricted profile (test_hub_boot.py checks each);
    JupyterHub's iptables metadata blocker, a privileged init container, would break it."""
    for user in booted["users"].values():
        for pod_manifest in user["pods"].values():
            assert restricted_violations(pod_manifest["spec"]) == []
    blocking = merge(
        lint_values, {"jupyterhub": {"singleuser": {"cloudMetadata": {"blockWithIptables": True}}}}
    )
    rebooted = boot_hub(render(blocking), tmp_path)
    (pod_manifest, *_) = rebooted["users"]["alice"]["pods"].values()
    assert any(
        "block-cloud-metadata: privileged" in v for v in restricted_violations(pod_manifest["spec"])
    )


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


def test_notebook_profiles_set_every_size(chart: helm.Chart) -> None:
    """A profile that resizes the notebook sets all four sizes (the others keep the defaults)."""
    singleuser = chart.merge_values(None)["jupyterhub"]["singleuser"]
    for resource in ("cpu", "memory"):
        assert singleuser[resource]["guarantee"] and singleuser[resource]["limit"]
    for profile in singleuser["profileList"]:
        sizes = {"cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit"}
        overridden = sizes & set(profile.get("kubespawner_override", {}))
        assert overridden in (set(), sizes), profile["display_name"]


# --- RBAC ----------------------------------------------------------------------------------

DASK_RESOURCES = (
    "daskclusters",
    "daskworkergroups",
    "daskworkergroups/scale",
    "daskjobs",
    "daskautoscalers",
)
#: What a KubeCluster needs in its namespace (dask-kubernetes #921, #582), and nothing more.
USER_RULES = {
    ("kubernetes.dask.org", resource, verb)
    for resource in DASK_RESOURCES
    for verb in ("get", "list", "watch", "patch", "create", "delete")
} | {
    ("", resource, verb)
    for resource in ("pods", "pods/status", "pods/log", "services")
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
    role = named(manifests, "ClusterRole", f"cubehub-{NAMESPACE}-user")
    assert _grants(role) == USER_RULES
    # Bound in the release namespace to the batch account only; never cluster-wide.
    bindings = [
        b
        for b in by_kind(manifests, "RoleBinding") + by_kind(manifests, "ClusterRoleBinding")
        if b["roleRef"]["name"] == role["metadata"]["name"]
    ]
    assert [(b["kind"], b["subjects"]) for b in bindings] == [
        (
            "RoleBinding",
            [{"kind": "ServiceAccount", "name": "cubehub-batch", "namespace": NAMESPACE}],
        )
    ]


def _rbac_objects(lint_manifests: list[Manifest], booted: dict[str, Any]) -> list[Manifest]:
    """Every Role and binding in force: the rendered ones and those the hub writes per user."""
    rendered = in_release_namespace(lint_manifests)
    per_user = [o for user in booted["users"].values() for o in user["objects"]]
    return rendered + per_user


ALICE, BOB, BATCH = (
    ("eo-alice", "cubehub-user"),
    ("eo-bob", "cubehub-user"),
    (NAMESPACE, "cubehub-batch"),
)
RBAC_ALLOWED = [
    (ALICE, verb, "kubernetes.dask.org", resource, "eo-alice")
    for resource in DASK_RESOURCES
    for verb in ("create", "patch", "delete", "get")
] + [
    (ALICE, "get", "", "pods/log", "eo-alice"),  # a user reads their scheduler's log
    (BOB, "delete", "kubernetes.dask.org", "daskclusters", "eo-bob"),
    (BATCH, "create", "kubernetes.dask.org", "daskclusters", NAMESPACE),  # CronJob runs
]
RBAC_DENIED = [
    (ALICE, verb, "kubernetes.dask.org", resource, "eo-bob")  # bob's clusters
    for resource in DASK_RESOURCES
    for verb in ("patch", "delete", "get", "create", "list")
] + [
    (ALICE, "get", "", "pods/log", "eo-bob"),
    (BOB, "delete", "kubernetes.dask.org", "daskclusters", "eo-alice"),
    (ALICE, "patch", "kubernetes.dask.org", "daskworkergroups/scale", NAMESPACE),  # batch clusters
    (ALICE, "create", "", "pods", "eo-alice"),  # pods only through the operator
    (ALICE, "create", "networking.k8s.io", "networkpolicies", "eo-alice"),  # no opening of paths
    (ALICE, "get", "", "secrets", "eo-alice"),
    (ALICE, "create", "rbac.authorization.k8s.io", "rolebindings", "eo-alice"),
    (BATCH, "delete", "kubernetes.dask.org", "daskclusters", "eo-alice"),
]


@pytest.mark.parametrize(("account", "verb", "group", "resource", "namespace"), RBAC_ALLOWED)
def test_rbac_allows(
    lint_manifests: list[Manifest], booted: dict[str, Any], account: tuple[str, str],
    verb: str, group: str, resource: str, namespace: str,
) -> None:  # fmt: skip
    request = Request(verb, group, resource, namespace)
    assert rbac_allows(_rbac_objects(lint_manifests, booted), account, request)


@pytest.mark.parametrize(("account", "verb", "group", "resource", "namespace"), RBAC_DENIED)
def test_rbac_denies(
    lint_manifests: list[Manifest], booted: dict[str, Any], account: tuple[str, str],
    verb: str, group: str, resource: str, namespace: str,
) -> None:  # fmt: skip
    request = Request(verb, group, resource, namespace)
    assert not rbac_allows(_rbac_objects(lint_manifests, booted), account, request)


def test_hub_may_make_user_namespaces_and_bind_only_the_user_role(
    manifests: list[Manifest],
) -> None:
    """The hub's cluster-wide rights: namespaces and, in them, what KubeSpawner and the user
    namespace objects need; it may bind the user ClusterRole only, and read no Secret."""
    hub = (NAMESPACE, named(manifests, "ServiceAccount", "hub")["metadata"]["name"])
    manifests = in_release_namespace(manifests)
    allowed = [
        Request("create", "", "namespaces", None),
        Request("create", "", "pods", "eo-alice"),
        Request("create", "networking.k8s.io", "networkpolicies", "eo-alice"),
        Request("create", "", "resourcequotas", "eo-alice"),
        Request(
            "bind", "rbac.authorization.k8s.io", "clusterroles", None, f"cubehub-{NAMESPACE}-user"
        ),
        Request("watch", "", "pods", None),
    ]
    denied = [
        Request("get", "", "secrets", "kube-system"),
        Request("list", "", "secrets", None),
        Request("bind", "rbac.authorization.k8s.io", "clusterroles", None, "cluster-admin"),
        Request("escalate", "rbac.authorization.k8s.io", "clusterroles", None),
        Request("create", "rbac.authorization.k8s.io", "clusterrolebindings", None),
        Request("patch", "", "namespaces", None),  # cannot relabel a namespace it did not make
        Request("create", "", "nodes", None),
    ]
    assert [r for r in allowed if not rbac_allows(manifests, hub, r)] == []
    assert [r for r in denied if rbac_allows(manifests, hub, r)] == []


# --- secrets -------------------------------------------------------------------------------

CANARY = "c4n4ry0f7h3s3cr3t5"


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


def test_hub_file_in_the_configmap_is_the_chart_file(default_manifests: list[Manifest]) -> None:
    data = named(default_manifests, "ConfigMap", "cubehub-hub")["data"]
    assert data["cubehub_spawner.py"].strip() == HUB_FILE.read_text().strip()


def test_hub_writes_no_policies_when_network_policies_are_off(render: Render) -> None:
    manifests = render({"networkPolicy": {"enabled": False}})
    assert [
        m["metadata"]["name"]
        for m in by_kind(manifests, "NetworkPolicy")
        if m["metadata"]["name"].startswith("cubehub")
    ] == []
    settings = json.loads(named(manifests, "ConfigMap", "cubehub-hub")["data"]["hub-settings.json"])
    assert "NetworkPolicy" not in {o["kind"] for o in settings["namespaceObjects"]}


# --- network policies ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def operator_builders() -> Any:
    """The operator's own pod builders, so Dask pods carry the labels the operator gives them."""
    from dask_kubernetes.operator.controller import controller

    return controller


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _dask_cluster(
    operator: Any,
    name: str,
    namespace: str,
    labels: dict[str, str],
    ip: str,
    namespace_labels: dict[str, str],
) -> dict[str, Endpoint]:
    """Scheduler and worker pods of DaskCluster ``name``, labelled as the operator labels them."""
    scheduler = operator.build_scheduler_deployment_spec(name, {"containers": []}, {}, labels)
    worker = operator.build_worker_deployment_spec(
        f"{name}-default", namespace, name, "abc12", {"containers": []}, {}, labels
    )
    return {
        "scheduler": pod(
            f"{ip}.1", namespace, _pod_labels(scheduler), namespace_labels=namespace_labels
        ),
        "worker": pod(f"{ip}.2", namespace, _pod_labels(worker), namespace_labels=namespace_labels),
    }


@pytest.fixture
def network(
    lint_manifests: list[Manifest], booted: dict[str, Any], operator_builders: Any
) -> tuple[list[Manifest], dict[str, Endpoint]]:
    """Every policy in force (rendered, JupyterHub's included, and those the hub writes into each
    user namespace) and the pods, with the labels their makers give them."""
    rendered = [
        {**p, "metadata": {**p["metadata"], "namespace": NAMESPACE}}
        for p in by_kind(lint_manifests, "NetworkPolicy")
    ]
    per_user = [
        o
        for user in booted["users"].values()
        for o in user["objects"]
        if o["kind"] == "NetworkPolicy"
    ]
    pods: dict[str, Endpoint] = {}
    for index, (user, found) in enumerate(sorted(booted["users"].items()), 1):
        namespace = found["namespace"]
        namespace_labels = {**found["namespace_labels"], "kubernetes.io/metadata.name": namespace}
        notebook = next(iter(found["pods"].values()))
        pods[f"{user}-notebook"] = pod(
            f"10.244.{index}.10", namespace, notebook["metadata"]["labels"], {"notebook-port": 8888},
            namespace_labels=namespace_labels,
        )  # fmt: skip
        template = load_yaml(
            next(o for o in found["objects"] if o["metadata"]["name"] == "cubehub-dask-config")[
                "data"
            ]["dask-pod.yaml"]
        )
        labels = labels_for(user, PodTemplate.from_mapping(template), "dask")
        cluster = _dask_cluster(
            operator_builders,
            f"cubehub-{user}-0123456789",
            namespace,
            labels,
            f"10.244.{index}",
            namespace_labels,
        )
        pods[f"{user}-scheduler"], pods[f"{user}-worker"] = cluster["scheduler"], cluster["worker"]

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
    batch = _dask_cluster(
        operator_builders, job["metadata"]["name"], NAMESPACE,
        job["spec"]["cluster"]["spec"]["scheduler"]["metadata"]["labels"], "10.244.3", {},
    )  # fmt: skip
    cron = named(lint_manifests, "CronJob", "cubehub-quarterly-composite")
    cron_labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    hub_labels = _pod_labels(named(lint_manifests, "Deployment", "hub"))
    proxy_labels = _pod_labels(named(lint_manifests, "Deployment", "proxy"))
    pods |= {
        "job-runner": pod("10.244.3.10", NAMESPACE, runner["metadata"]["labels"]),
        "batch-scheduler": batch["scheduler"],
        "cron-runner": pod("10.244.3.11", NAMESPACE, cron_labels),
        "hub": pod("10.244.3.12", NAMESPACE, hub_labels, {"http": 8081}),
        "proxy": pod("10.244.3.13", NAMESPACE, proxy_labels),
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
    return rendered + per_user, pods


ALLOWED = [
    ("alice-notebook", "alice-scheduler", 8786),  # the client talks to its own scheduler
    ("alice-notebook", "alice-scheduler", 8787),  # and shows its dashboard via the proxy
    ("bob-notebook", "bob-scheduler", 8786),
    ("alice-worker", "alice-scheduler", 8786),  # workers and scheduler, any port
    ("alice-scheduler", "alice-worker", 40123),
    ("alice-worker", "alice-worker", 40123),  # workers share data
    ("alice-worker", "s3", 443),  # object storage
    ("job-runner", "batch-scheduler", 8786),  # batch runners drive their clusters
    ("cron-runner", "batch-scheduler", 8786),
    ("cron-runner", "api-server", 443),  # a CronJob run creates its own cluster
    ("alice-notebook", "api-server", 443),  # so does a notebook
    ("alice-notebook", "s3", 443),  # public addresses
    ("alice-notebook", "hub", 8081),  # the server reports to the hub
    ("hub", "alice-notebook", 8888),  # and the hub checks it
    ("proxy", "bob-notebook", 8888),  # the proxy forwards the user's requests
    ("operator", "alice-scheduler", 8787),  # the operator checks idleness, retires workers
    ("operator", "bob-scheduler", 8786),
    ("operator", "batch-scheduler", 8786),
]
DENIED = [
    ("alice-notebook", "bob-scheduler", 8786),  # another user's scheduler
    ("alice-notebook", "bob-scheduler", 8787),  # and its dashboard
    ("bob-notebook", "alice-scheduler", 8786),
    ("alice-worker", "bob-scheduler", 8786),  # another user's cluster, from a worker
    ("alice-worker", "bob-worker", 40123),
    ("alice-scheduler", "bob-worker", 40123),
    ("job-runner", "bob-scheduler", 8786),  # a batch job's runner
    ("cron-runner", "alice-scheduler", 8786),
    ("batch-scheduler", "alice-worker", 40123),
    ("alice-notebook", "bob-notebook", 8888),  # another user's server
    ("alice-worker", "bob-notebook", 8888),
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


def test_the_policies_the_hub_writes_are_what_isolates_users(
    network: tuple[list[Manifest], dict[str, Endpoint]],
) -> None:
    """Without the policies the hub writes before the first spawn, a user namespace is open: the
    hub writes them before it creates the notebook pod."""
    policies, pods = network
    rendered = [p for p in policies if p["metadata"]["namespace"] == NAMESPACE]
    assert connection_allowed(rendered, pods["alice-worker"], pods["bob-scheduler"], 8786)
    assert not connection_allowed(policies, pods["alice-worker"], pods["bob-scheduler"], 8786)


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
    """The batch account and every user's account carry the identity; pods the labels."""
    settings, annotations, pod_labels = IDENTITIES[provider]
    values = merge(lint_values, {"workloadIdentity": {"provider": provider, **settings}})
    values["objectStore"]["existingSecret"] = ""
    manifests = render(values)
    hub = json.loads(named(manifests, "ConfigMap", "cubehub-hub")["data"]["hub-settings.json"])
    user_objects = hub["namespaceObjects"]
    accounts = [
        named(manifests, "ServiceAccount", "cubehub-batch"),
        named(user_objects, "ServiceAccount", "cubehub-user"),
    ]
    for account in accounts:
        assert account["metadata"]["annotations"] == {"example.org/owner": "eo-team", **annotations}
    for config, account_name in (
        (named(manifests, "ConfigMap", "cubehub-dask-config"), "cubehub-batch"),
        (named(user_objects, "ConfigMap", "cubehub-dask-config"), "cubehub-user"),
    ):
        template = load_yaml(config["data"]["dask-pod.yaml"])
        assert template["pod"]["serviceAccountName"] == account_name
        assert template["container"]["envFrom"] == [{"configMapRef": {"name": "cubehub-env"}}]
        for key, value in pod_labels.items():
            assert template["labels"][key] == value
    assert hub["podLabels"] == pod_labels
    cron = named(manifests, "CronJob", "cubehub-quarterly-composite")["spec"]["jobTemplate"][
        "spec"
    ]["template"]
    for key, value in pod_labels.items():
        assert cron["metadata"]["labels"][key] == value
    for policy in (
        named(manifests, "NetworkPolicy", "cubehub-dask"),
        named(manifests, "NetworkPolicy", "cubehub-batch"),
        named(user_objects, "NetworkPolicy", "cubehub-dask"),
        named(user_objects, "NetworkPolicy", "cubehub-notebook"),
    ):
        gke_metadata = any(
            rule.get("to") == [{"ipBlock": {"cidr": "169.254.169.254/32"}}]
            for rule in policy["spec"]["egress"]
        )
        assert gke_metadata == (provider == "gcp"), policy["metadata"]["name"]
