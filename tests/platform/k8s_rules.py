"""Kubernetes rules the platform tests apply to rendered manifests, written out from the specs.

- ``pod_specs``: every pod template in a manifest (workloads, CronJobs, DaskJobs).
- ``restricted_violations``: the "restricted" Pod Security Standard
  (https://kubernetes.io/docs/concepts/security/pod-security-standards/), baseline included.
- ``connection_allowed``: NetworkPolicy semantics for one TCP connection between two endpoints
  (https://kubernetes.io/docs/concepts/services-networking/network-policies/).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Manifest = dict[str, Any]


def pod_specs(manifest: Manifest) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) for each pod template the manifest makes Kubernetes run."""
    kind, name, spec = manifest["kind"], manifest["metadata"]["name"], manifest.get("spec", {})
    where = f"{kind}/{name}"
    if kind == "Pod":
        yield where, spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield where, spec["template"]["spec"]
    elif kind == "CronJob":
        yield where, spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "DaskJob":
        yield f"{where} job", spec["job"]["spec"]
        yield f"{where} scheduler", spec["cluster"]["spec"]["scheduler"]["spec"]
        yield f"{where} worker", spec["cluster"]["spec"]["worker"]["spec"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Every way ``pod`` breaks the restricted profile (an empty list if it meets it)."""
    problems = []
    psc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{key} is set")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']} is of type {sorted(kinds)}")
    for sysctl in psc.get("sysctls", []):
        problems.append(f"sysctl {sysctl['name']} is set")
    pod_non_root = psc.get("runAsNonRoot") is True
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if psc.get("runAsUser") == 0:
        problems.append("pod runAsUser is 0")
    if pod_seccomp is not None and pod_seccomp not in _SECCOMP_OK:
        problems.append(f"pod seccompProfile is {pod_seccomp}")
    for container in containers(pod):
        name = container["name"]
        csc = container.get("securityContext") or {}
        if csc.get("privileged"):
            problems.append(f"{name}: privileged")
        if csc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if not (csc.get("runAsNonRoot") is True or (pod_non_root and "runAsNonRoot" not in csc)):
            problems.append(f"{name}: runAsNonRoot is not true")
        if csc.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser is 0")
        seccomp = (csc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in _SECCOMP_OK:
            problems.append(f"{name}: seccompProfile is {seccomp}, not RuntimeDefault or Localhost")
        capabilities = csc.get("capabilities") or {}
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {capabilities['add']}")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{name}: uses a hostPort")
        if csc.get("procMount", "Default") != "Default":
            problems.append(f"{name}: procMount is {csc['procMount']}")
    return problems


# --- NetworkPolicy evaluation -------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (namespace, labels, named ports) or a bare IP address."""

    ip: str
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)
    named_ports: dict[str, int] = field(default_factory=dict)

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None


def pod(
    ip: str,
    namespace: str,
    labels: dict[str, str],
    named_ports: dict[str, int] | None = None,
    namespace_labels: dict[str, str] | None = None,
) -> Endpoint:
    """A pod in ``namespace``, whose labels are ``namespace_labels`` plus the name label."""
    return Endpoint(
        ip=ip,
        namespace=namespace,
        labels=labels,
        namespace_labels={**(namespace_labels or {}), "kubernetes.io/metadata.name": namespace},
        named_ports=named_ports or {},
    )


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector; an empty selector matches everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(peer: dict[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        # ipBlock is meant for addresses outside the cluster; pods are matched by selectors.
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        return (
            not other.is_pod
            and address in ipaddress.ip_network(block["cidr"])
            and not any(address in ipaddress.ip_network(cidr) for cidr in block.get("except", []))
        )
    if not other.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selector_matches(peer.get("podSelector"), other.labels)


def _port_matches(rule: dict[str, Any], port: int, target: Endpoint) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != "TCP":
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        number = target.named_ports.get(wanted) if isinstance(wanted, str) else wanted
        end = entry.get("endPort", number)
        if number is not None and number <= port <= end:
            return True
    return False


def _direction_allows(
    policies: list[Manifest], subject: Endpoint, other: Endpoint, port: int, direction: str
) -> bool:
    """Whether the policies selecting ``subject`` let traffic in ``direction`` through."""
    kind, peers_key = ("Ingress", "from") if direction == "ingress" else ("Egress", "to")
    # The port is the destination's: for ingress that is the subject, for egress the other end.
    destination = subject if direction == "ingress" else other
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == subject.namespace
        and kind in p["spec"].get("policyTypes", ["Ingress"])
        and selector_matches(p["spec"]["podSelector"], subject.labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(direction, []) or []:
            peers = rule.get(peers_key)
            if peers and not any(
                _peer_matches(peer, policy["metadata"]["namespace"], other) for peer in peers
            ):
                continue
            if _port_matches(rule, port, destination):
                return True
    return False


def connection_allowed(
    policies: list[Manifest], source: Endpoint, destination: Endpoint, port: int
) -> bool:
    """Whether a TCP connection from ``source`` to ``destination``:``port`` gets through."""
    egress_ok = not source.is_pod or _direction_allows(
        policies, source, destination, port, "egress"
    )
    ingress_ok = not destination.is_pod or _direction_allows(
        policies, destination, source, port, "ingress"
    )
    return egress_ok and ingress_ok


# --- RBAC evaluation -----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One API request: ``verb`` on ``resource`` (``"pods/log"`` for a subresource) of ``group``,
    in ``namespace`` (None: cluster-scoped), optionally of the object called ``name``."""

    verb: str
    group: str
    resource: str
    namespace: str | None
    name: str | None = None


def _subject_matches(subject: dict[str, Any], account: tuple[str, str]) -> bool:
    namespace, name = account
    if subject["kind"] == "ServiceAccount":
        return bool(subject["name"] == name and subject.get("namespace") == namespace)
    if subject["kind"] == "Group":
        return subject["name"] in (
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        )
    return bool(subject["name"] == f"system:serviceaccount:{namespace}:{name}")


def _rule_matches(rule: dict[str, Any], request: Request) -> bool:
    def has(values: list[str], value: str) -> bool:
        return "*" in values or value in values

    names = rule.get("resourceNames")
    return (
        has(rule.get("apiGroups", []), request.group)
        and has(rule.get("resources", []), request.resource)
        and has(rule["verbs"], request.verb)
        and (not names or request.name in names)
    )


def rbac_allows(objects: list[Manifest], account: tuple[str, str], request: Request) -> bool:
    """Whether the RBAC authorizer lets ServiceAccount ``account`` (namespace, name) make
    ``request``, given every Role, ClusterRole and binding in ``objects``
    (https://kubernetes.io/docs/reference/access-authn-authz/rbac/). RoleBindings grant in
    their own namespace only, ClusterRoleBindings everywhere."""
    roles = {
        (m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"]): m
        for m in objects
        if m["kind"] in ("Role", "ClusterRole")
    }
    for binding in objects:
        if binding["kind"] == "RoleBinding":
            if binding["metadata"]["namespace"] != request.namespace:
                continue
        elif binding["kind"] != "ClusterRoleBinding":
            continue
        if not any(_subject_matches(s, account) for s in binding.get("subjects") or []):
            continue
        ref = binding["roleRef"]
        role_namespace = binding["metadata"]["namespace"] if ref["kind"] == "Role" else None
        role = roles.get((ref["kind"], role_namespace, ref["name"]))
        if role and any(_rule_matches(rule, request) for rule in role.get("rules") or []):
            return True
    return False


# --- LimitRange and ResourceQuota admission --------------------------------------------------

_SUFFIXES = {
    "": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50,
}  # fmt: skip


def quantity(value: str | float) -> float:
    """A Kubernetes quantity ("500m", "4Gi", 2) as a number of cores or bytes."""
    text = str(value)
    number = text.rstrip("kmMGTPi")
    return float(number) * _SUFFIXES[text[len(number) :]]


def admit_pod(
    pod: dict[str, Any],
    limit_ranges: list[Manifest],
    quotas: list[Manifest],
    used: dict[str, float],
) -> list[str]:
    """Why the API server rejects creating ``pod`` (a PodSpec) in a namespace with these
    LimitRanges and ResourceQuotas, where ``used`` is what the quota already counts
    ({"requests.cpu": cores, "pods": 3, ...}); empty if it is admitted. LimitRange defaults
    are applied first, as the admission plugin does."""
    problems = []
    totals = {"pods": 1.0}
    for container in containers(pod):
        resources = {
            part: dict(container.get("resources", {}).get(part, {}))
            for part in ("requests", "limits")
        }
        for limit_range in limit_ranges:
            for item in limit_range["spec"]["limits"]:
                if item["type"] != "Container":
                    continue
                for key, value in item.get("default", {}).items():
                    resources["limits"].setdefault(key, value)
                for key, value in item.get("defaultRequest", {}).items():
                    resources["requests"].setdefault(key, resources["limits"].get(key, value))
                for key, value in item.get("max", {}).items():
                    asked = resources["limits"].get(key)
                    if asked is not None and quantity(asked) > quantity(value):
                        problems.append(
                            f"{container['name']}: limits.{key} {asked} is above the LimitRange maximum {value}"
                        )
        for part in ("requests", "limits"):
            for key, value in resources[part].items():
                totals[f"{part}.{key}"] = totals.get(f"{part}.{key}", 0.0) + quantity(value)
    for quota in quotas:
        for key, hard in quota["spec"]["hard"].items():
            if key in totals and used.get(key, 0.0) + totals[key] > quantity(hard):
                problems.append(
                    f"exceeded quota {quota['metadata']['name']}: {key} {used.get(key, 0.0) + totals[key]:g} > {hard}"
                )
    return problems
