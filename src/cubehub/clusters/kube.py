"""Kubernetes settings of cubehub's Dask pods, as frozen records; no I/O.

:class:`KubeSettings` (image, namespace, worker bounds, idle timeout, :class:`PodSize` of
each pod, secrets by reference), :class:`PodOwner` (the pod whose deletion deletes a
cluster), :class:`PodTemplate` (what the platform adds to every pod), and the names and
labels every cubehub object carries. :mod:`cubehub.clusters.manifests` builds the
``DaskCluster`` and ``DaskJob`` resources from them.

Where a notebook pod's identity comes from (set by the platform chart; see docs/deploy.md):

* ``CUBEHUB_POD_NAME`` (downward API ``metadata.name``; falls back to ``HOSTNAME``, which
  Kubernetes sets to the pod name) and ``CUBEHUB_POD_UID`` (downward API ``metadata.uid``):
  the owner of the clusters the pod starts;
* the namespace: ``/var/run/secrets/kubernetes.io/serviceaccount/namespace``;
* ``CUBEHUB_USER``: the user's label value (KubeSpawner's ``{username}``);
* ``JUPYTER_IMAGE_SPEC``: the notebook's image, the default image of its clusters;
* ``CUBEHUB_DASK_POD_TEMPLATE``: a YAML file (``labels``, ``pod``, ``container``) merged
  into every Dask pod (service account, security context, ``envFrom``, volumes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cubehub.clusters.spec import check_quantity
from cubehub.credentials import is_secret_name
from cubehub.errors import ClusterError, InputError

#: Label tying Dask pods to their user; the platform's NetworkPolicies select on it.
USER_LABEL = "cubehub.io/user"
#: Longest cluster name: the operator appends "-scheduler" and names must fit 63 characters.
MAX_NAME_LENGTH = 63 - len("-scheduler")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def check_no_secret_env(env: Mapping[str, str], where: str) -> None:
    """Raise :class:`InputError` if ``env`` names a credential, which must not travel as a value."""
    secret = sorted(name for name in env if is_secret_name(name))
    if secret:
        raise InputError(
            f"{where} may not carry credentials ({', '.join(secret)}): give them to the pods by "
            "reference (a Kubernetes Secret, cubehub.cluster.kubernetes.secrets) or use the cloud's "
            "workload identity"
        )


@dataclass(frozen=True)
class PodSize:
    """Requests of one pod (limits are equal, so the pod is never throttled below them)."""

    cpu: str
    """CPU cores, a Kubernetes quantity such as ``"2"`` or ``"500m"``."""
    memory: str
    """Memory, a Kubernetes quantity such as ``"8Gi"``."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """Node labels the pod must run on (default: any node)."""
    tolerations: tuple[Mapping[str, Any], ...] = ()
    """Taints the pod tolerates (default: none)."""

    def __post_init__(self) -> None:
        for what, value in (("cpu", self.cpu), ("memory", self.memory)):
            check_quantity(str(value), what)

    def resources(self) -> dict[str, Any]:
        amounts = {"cpu": str(self.cpu), "memory": str(self.memory)}
        return {"requests": dict(amounts), "limits": dict(amounts)}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PodSize:
        """From the ``worker``/``scheduler`` settings: ``cpu``, ``memory``, ``node_selector``, ``tolerations``."""
        return cls(
            cpu=str(values["cpu"]),
            memory=str(values["memory"]),
            node_selector=dict(values.get("node_selector") or {}),
            tolerations=tuple(values.get("tolerations") or ()),
        )


@dataclass(frozen=True)
class KubeSettings:
    """Everything :func:`~cubehub.clusters.manifests.cluster_spec` needs besides the name, the
    owner and the template."""

    image: str
    """Image of the scheduler and workers; the notebook's own, so versions match."""
    namespace: str
    minimum: int
    """Fewest workers the autoscaler keeps (0: none while idle); also the starting number."""
    maximum: int
    """Most workers the autoscaler starts."""
    idle_timeout: int
    """Seconds without work after which the operator deletes the cluster; > 0."""
    worker: PodSize
    scheduler: PodSize
    secrets: tuple[str, ...] = ()
    """Secrets whose keys become environment variables of every pod (``envFrom``)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Non-secret environment variables of every pod."""

    def __post_init__(self) -> None:
        if not 0 <= self.minimum <= self.maximum or self.maximum < 1:
            raise InputError(
                f"adaptive bounds must satisfy 0 <= minimum <= maximum and maximum >= 1, "
                f"got minimum={self.minimum}, maximum={self.maximum}"
            )
        if self.idle_timeout <= 0:
            raise InputError(
                f"idle_timeout must be a positive number of seconds, got {self.idle_timeout}: a "
                "cluster without one runs (and costs) until someone deletes it"
            )
        if not _DNS_LABEL.match(self.namespace):
            raise InputError(f"namespace {self.namespace!r} is not a valid Kubernetes name")
        for secret in self.secrets:
            if not _DNS_LABEL.match(secret):
                raise InputError(f"secret name {secret!r} is not a valid Kubernetes name")
        check_no_secret_env(self.env, "cubehub.cluster.kubernetes.env")


def resolve_settings(
    values: Mapping[str, Any], environ: Mapping[str, str], pod_namespace: str | None
) -> KubeSettings:
    """:class:`KubeSettings` from the ``cubehub.cluster.kubernetes`` settings (already merged).

    Args:
        values: the settings, e.g. ``config.get("cluster.kubernetes")`` with overrides merged.
        environ: the process environment; ``JUPYTER_IMAGE_SPEC`` is the default image.
        pod_namespace: the namespace of the pod this runs in; the default namespace.
    """
    image = values.get("image") or environ.get("JUPYTER_IMAGE_SPEC")
    if not image:
        raise InputError(
            "no image for the Dask pods: set cubehub.cluster.kubernetes.image "
            "(DASK_CUBEHUB__CLUSTER__KUBERNETES__IMAGE), or run in a JupyterHub pod, which sets "
            "$JUPYTER_IMAGE_SPEC"
        )
    namespace = values.get("namespace") or pod_namespace
    if not namespace:
        raise InputError(
            "no namespace: pass --namespace (cubehub k8s job) or namespace=, set "
            "cubehub.cluster.kubernetes.namespace (DASK_CUBEHUB__CLUSTER__KUBERNETES__NAMESPACE), "
            "or run inside a pod, whose namespace is the default"
        )
    adaptive = values.get("adaptive") or {}
    return KubeSettings(
        image=str(image),
        namespace=str(namespace),
        minimum=int(adaptive.get("minimum", 0)),
        maximum=int(adaptive.get("maximum", 1)),
        idle_timeout=int(values.get("idle_timeout") or 0),
        worker=PodSize.from_mapping(values["worker"]),
        scheduler=PodSize.from_mapping(values["scheduler"]),
        secrets=tuple(values.get("secrets") or ()),
        env={str(k): str(v) for k, v in (values.get("env") or {}).items()},
    )


@dataclass(frozen=True)
class PodOwner:
    """The pod whose deletion deletes the cluster (Kubernetes garbage collection)."""

    name: str
    uid: str
    namespace: str
    """Owner and owned must share it: the garbage collector deletes an object whose
    namespaced owner it cannot find in the object's own namespace."""

    def reference(self) -> dict[str, Any]:
        """An ``ownerReference``; not a controller, and blocking nothing on deletion."""
        return {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid}

    def check_namespace(self, namespace: str) -> None:
        if namespace != self.namespace:
            raise InputError(
                f"pod {self.name} in namespace {self.namespace} cannot own an object in namespace "
                f"{namespace} (Kubernetes would delete it at once): use namespace {self.namespace}, "
                "or do without the owner (cubehub.cluster.kubernetes.owner_pod: false, --no-owner-pod)"
            )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], namespace: str) -> PodOwner:
        """From ``CUBEHUB_POD_NAME`` (or ``HOSTNAME``) and ``CUBEHUB_POD_UID``, in ``namespace``."""
        name = environ.get("CUBEHUB_POD_NAME") or environ.get("HOSTNAME")
        uid = environ.get("CUBEHUB_POD_UID")
        if not name or not uid:
            raise ClusterError(
                "cannot make this pod the owner of its Dask cluster: CUBEHUB_POD_UID (and "
                "CUBEHUB_POD_NAME) are not set; expose them through the downward API "
                "(env: - name: CUBEHUB_POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}), "
                "or set cubehub.cluster.kubernetes.owner_pod to false to let the idle timeout alone "
                "end the cluster"
            )
        return cls(name, uid, namespace)


@dataclass(frozen=True)
class PodTemplate:
    """What the platform adds to every Dask pod: ``labels``, ``pod`` and ``container`` fields."""

    labels: Mapping[str, str] = field(default_factory=dict)
    pod: Mapping[str, Any] = field(default_factory=dict)
    """PodSpec fields, e.g. serviceAccountName, securityContext, volumes, imagePullSecrets."""
    container: Mapping[str, Any] = field(default_factory=dict)
    """Container fields, e.g. securityContext, envFrom, volumeMounts, imagePullPolicy."""

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any] | None, where: str = "pod template"
    ) -> PodTemplate:
        values = values or {}
        unknown = set(values) - {"labels", "pod", "container"}
        if unknown:
            raise InputError(
                f"{where}: unknown keys {sorted(unknown)}; valid keys: labels, pod, container"
            )
        return cls(
            labels=dict(values.get("labels") or {}),
            pod=dict(values.get("pod") or {}),
            container=dict(values.get("container") or {}),
        )


def cluster_name(user: str | None, token: str) -> str:
    """A valid DaskCluster name: ``cubehub-<user>-<token>``, lower case, at most 53 characters."""
    stem = re.sub(r"[^a-z0-9-]+", "-", f"cubehub-{user or 'dask'}".lower()).strip("-")
    suffix = re.sub(r"[^a-z0-9]+", "", token.lower())[:10]
    return f"{stem[: MAX_NAME_LENGTH - len(suffix) - 1].rstrip('-')}-{suffix}"


def check_name(name: str, what: str = "name") -> str:
    """``name`` if the operator accepts it for a DaskCluster or DaskJob, else :class:`InputError`."""
    if len(name) > MAX_NAME_LENGTH or not _DNS_LABEL.match(name):
        raise InputError(
            f"{what} {name!r} is not a valid Dask cluster name: lower-case letters, digits and '-', "
            f"starting and ending with a letter or digit, at most {MAX_NAME_LENGTH} characters"
        )
    return name


def labels_for(user: str | None, template: PodTemplate, component: str) -> dict[str, str]:
    """Labels of a cubehub Dask object: app, component, the user (for network policies), the template's."""
    labels = {
        "app.kubernetes.io/name": "cubehub",
        "app.kubernetes.io/component": component,
        **template.labels,
    }
    if user is not None:
        if len(user) > 63 or not _LABEL_VALUE.match(user):
            raise InputError(f"user {user!r} (CUBEHUB_USER) is not a valid Kubernetes label value")
        labels[USER_LABEL] = user
    return labels
