"""Kubernetes manifests for Dask clusters and batch jobs, as plain dicts; no I/O.

* :func:`cluster_spec` — the ``DaskCluster`` a notebook asks the dask-kubernetes operator
  for. The operator's own ``make_cluster_spec`` builds it; cubehub then adds what every
  cluster must have: an idle timeout, the notebook pod as owner (the cluster is deleted
  with the pod), requests and limits, labels, and a "restricted" pod security context.
* :func:`daskjob_manifest` — the ``DaskJob`` that runs ``cubehub run`` in a runner pod next
  to a cluster of its own, with a deadline and a time to live.
* :func:`check_applied` — what the API server stored against what was asked: a
  ``DaskCluster`` CRD without ``idleTimeout`` prunes the field silently (dask-kubernetes
  #882) and the cluster then lives for ever.
* :func:`expired_daskjobs` — finished ``DaskJob`` objects past their time to live.

Secrets never appear in these manifests: pods get them from Secrets by reference
(``envFrom.secretRef``) or from the cloud's workload identity.

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

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cubehub.errors import ClusterError, InputError

DASK_API_VERSION = "kubernetes.dask.org/v1"
#: Label tying Dask pods to their user; the platform's NetworkPolicies select on it.
USER_LABEL = "cubehub.io/user"
#: Seconds a finished DaskJob is kept (for its logs) before ``cubehub k8s gc`` deletes it.
TTL_ANNOTATION = "cubehub.io/ttl-seconds-after-finished"
#: The runner reads the job file from this environment variable (``cubehub run env:...``).
JOB_ENV = "CUBEHUB_JOB"
#: DaskJob statuses after which the operator has deleted the job's cluster.
FINISHED_JOB_STATUSES = ("Successful", "Failed")
#: The distributed 2025+ command line: the ``dask-worker``/``dask-scheduler`` scripts that
#: the operator's defaults call no longer exist.
WORKER_COMMAND = ("dask", "worker")
SCHEDULER_ARGS = ("dask", "scheduler", "--host", "0.0.0.0")
#: Longest cluster name: the operator appends "-scheduler" and names must fit 63 characters.
MAX_NAME_LENGTH = 63 - len("-scheduler")
#: The "restricted" Pod Security Standard, unless the pod template says otherwise.
RESTRICTED_POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
#: Environment variable names that hold credentials; such values travel only by reference.
_SECRET_NAME = re.compile(
    r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|ACCESS_KEY|ACCOUNT_KEY|PRIVATE|SAS|CONNECTION_STRING|AUTH",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """True for environment variable names that hold credentials (``AWS_SECRET_ACCESS_KEY``, ...)."""
    return bool(_SECRET_NAME.search(name))


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
            if not _QUANTITY.match(str(value)):
                raise InputError(f"{what} {value!r} is not a Kubernetes quantity; write e.g. '2', '500m', '8Gi'")

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
    """Everything :func:`cluster_spec` needs besides the name, the owner and the template."""

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


def resolve_settings(values: Mapping[str, Any], environ: Mapping[str, str], pod_namespace: str | None) -> KubeSettings:
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
        raise InputError("no namespace: set cubehub.cluster.kubernetes.namespace")
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
    def from_mapping(cls, values: Mapping[str, Any] | None, where: str = "pod template") -> PodTemplate:
        values = values or {}
        unknown = set(values) - {"labels", "pod", "container"}
        if unknown:
            raise InputError(f"{where}: unknown keys {sorted(unknown)}; valid keys: labels, pod, container")
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
    labels = {"app.kubernetes.io/name": "cubehub", "app.kubernetes.io/component": component, **template.labels}
    if user is not None:
        if len(user) > 63 or not _LABEL_VALUE.match(user):
            raise InputError(f"user {user!r} (CUBEHUB_USER) is not a valid Kubernetes label value")
        labels[USER_LABEL] = user
    return labels


def _container(
    base: Mapping[str, Any], size: PodSize, settings: KubeSettings, template: PodTemplate, extra_env: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """``base`` (name, image, args, ports, probes) completed with resources, environment and security."""
    container: dict[str, Any] = {"securityContext": copy.deepcopy(RESTRICTED_CONTAINER_SECURITY)}
    container.update(copy.deepcopy(dict(template.container)))
    container.update({k: v for k, v in base.items() if k not in ("env", "resources")})
    container["resources"] = size.resources()
    env = [*extra_env, *({"name": k, "value": v} for k, v in sorted(settings.env.items()))]
    if env:
        container["env"] = env
    env_from = [*template.container.get("envFrom", []), *({"secretRef": {"name": s}} for s in settings.secrets)]
    if env_from:
        container["envFrom"] = env_from
    return container


def _pod_spec(container: Mapping[str, Any], size: PodSize, template: PodTemplate, **fields: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "securityContext": copy.deepcopy(RESTRICTED_POD_SECURITY),
        # Dask pods never call the Kubernetes API.
        "automountServiceAccountToken": False,
    }
    pod.update(copy.deepcopy(dict(template.pod)))
    pod.update(fields)
    if size.node_selector:
        pod["nodeSelector"] = dict(size.node_selector)
    if size.tolerations:
        pod["tolerations"] = [dict(t) for t in size.tolerations]
    pod["containers"] = [dict(container)]
    return pod


def cluster_spec(
    name: str,
    settings: KubeSettings,
    *,
    owner: PodOwner | None,
    user: str | None = None,
    template: PodTemplate | None = None,
) -> dict[str, Any]:
    """The ``DaskCluster`` resource of a per-user cluster.

    Args:
        name: cluster name (:func:`cluster_name`); the scheduler service is ``<name>-scheduler``.
        settings: image, namespace, worker bounds, idle timeout, pod sizes, secrets.
        owner: the notebook pod; the cluster is deleted with it. None: no owner (batch runs
            bounded by their own deadline).
        user: value of the ``cubehub.io/user`` label on the cluster and its pods.
        template: fields the platform adds to every Dask pod.
    """
    # Imported here: dask_kubernetes brings kr8s and httpx, which the rest of cubehub skips.
    from dask_kubernetes.operator.kubecluster.kubecluster import make_cluster_spec

    check_name(name, "cluster name")
    template = template or PodTemplate()
    spec: dict[str, Any] = make_cluster_spec(
        name=name,
        image=settings.image,
        n_workers=settings.minimum,
        worker_command=list(WORKER_COMMAND),
        idle_timeout=settings.idle_timeout,
    )
    labels = labels_for(user, template, "dask")
    spec["metadata"] = {"name": name, "namespace": settings.namespace, "labels": labels}
    if owner is not None:
        owner.check_namespace(settings.namespace)
        spec["metadata"]["ownerReferences"] = [owner.reference()]
    body = spec["spec"]
    worker = body["worker"]
    worker["metadata"] = {"labels": dict(labels)}
    worker_container = _container(worker["spec"]["containers"][0], settings.worker, settings, template)
    worker["spec"] = _pod_spec(worker_container, settings.worker, template)
    scheduler = body["scheduler"]
    scheduler["metadata"] = {"labels": dict(labels)}
    base = {**scheduler["spec"]["containers"][0], "args": list(SCHEDULER_ARGS)}
    scheduler_container = _container(base, settings.scheduler, settings, template)
    scheduler["spec"] = _pod_spec(scheduler_container, settings.scheduler, template)
    return spec


def daskjob_manifest(
    name: str,
    job_yaml: str,
    settings: KubeSettings,
    *,
    workers: int,
    runner: PodSize,
    active_deadline_seconds: int,
    ttl_seconds_after_finished: int,
    owner: PodOwner | None = None,
    user: str | None = None,
    template: PodTemplate | None = None,
) -> dict[str, Any]:
    """The ``DaskJob`` that runs ``cubehub run`` on its own Dask cluster.

    The operator starts the cluster (named ``name``) and the runner pod (``<name>-runner``),
    tells the runner the scheduler address (``DASK_SCHEDULER_ADDRESS``), and deletes the
    cluster when the runner ends. The job file travels inside the manifest (environment
    variable :data:`JOB_ENV`), so nothing else needs creating or cleaning up.

    Args:
        name: DaskJob name (also the cluster's), at most 53 characters.
        job_yaml: the validated job file's text.
        settings: image, namespace, pod sizes, secrets (their adaptive bounds are unused).
        workers: number of Dask workers.
        runner: size of the runner pod.
        active_deadline_seconds: the runner is stopped after this many seconds; its failure
            makes the operator delete the cluster. The operator (2026.3) drops the cluster's
            ``idleTimeout`` when it creates a job's cluster, so this is the bound that holds.
        ttl_seconds_after_finished: how long the finished DaskJob and runner pod (and their
            logs) are kept; ``cubehub k8s gc`` deletes them afterwards.
        owner: the notebook pod that launched the job: the job (and its cluster) is deleted
            with it. None for unattended jobs, bounded by their deadline alone.
    """
    if workers < 1:
        raise InputError(f"a DaskJob needs at least one worker, got {workers}")
    if active_deadline_seconds < 1 or ttl_seconds_after_finished < 0:
        raise InputError(
            "active_deadline_seconds must be >= 1 and ttl_seconds_after_finished >= 0, got "
            f"{active_deadline_seconds} and {ttl_seconds_after_finished}"
        )
    template = template or PodTemplate()
    cluster = cluster_spec(name, replace(settings, minimum=workers, maximum=workers), owner=None, user=user, template=template)
    job_env = [
        {"name": JOB_ENV, "value": job_yaml},
        # The operator sets DASK_SCHEDULER_ADDRESS in the runner; backend address reads it.
        {"name": "DASK_CUBEHUB__CLUSTER__BACKEND", "value": "address"},
    ]
    base = {"name": "job", "image": settings.image, "command": ["cubehub", "run", f"env:{JOB_ENV}"]}
    runner_container = _container(base, runner, settings, template, extra_env=job_env)
    pod = _pod_spec(
        runner_container, runner, template, restartPolicy="Never", activeDeadlineSeconds=active_deadline_seconds
    )
    labels = labels_for(user, template, "batch")
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": settings.namespace,
        "labels": labels,
        "annotations": {TTL_ANNOTATION: str(ttl_seconds_after_finished)},
    }
    if owner is not None:
        owner.check_namespace(settings.namespace)
        metadata["ownerReferences"] = [owner.reference()]
    return {
        "apiVersion": DASK_API_VERSION,
        "kind": "DaskJob",
        "metadata": metadata,
        "spec": {
            "job": {"metadata": {"labels": dict(labels)}, "spec": pod},
            # The DaskJob CRD has no spec.cluster.metadata (the server would drop it): the
            # scheduler and worker pods carry the labels in their own metadata.
            "cluster": {"spec": cluster["spec"]},
        },
    }


def check_applied(requested: Mapping[str, Any], applied: Mapping[str, Any]) -> list[str]:
    """What the API server did not keep of a ``DaskCluster`` cubehub asked for; empty if all.

    Checks the idle timeout (an outdated CRD prunes it, dask-kubernetes #882), the owner
    references and the labels. ``applied`` is the object as read back after creation.
    """
    problems = []
    want_idle = requested.get("spec", {}).get("idleTimeout")
    got_idle = applied.get("spec", {}).get("idleTimeout")
    if want_idle and got_idle != want_idle:
        problems.append(
            f"spec.idleTimeout: asked {want_idle} s, stored {got_idle}; the DaskCluster CRD installed "
            "in this cluster drops the field (dask-kubernetes #882): upgrade the dask-kubernetes "
            "operator's CRDs"
        )
    want_owners = {ref["uid"] for ref in requested.get("metadata", {}).get("ownerReferences", [])}
    got_owners = {ref.get("uid") for ref in applied.get("metadata", {}).get("ownerReferences", [])}
    if want_owners - got_owners:
        problems.append(f"metadata.ownerReferences: owner {sorted(want_owners - got_owners)} was not stored")
    got_labels = applied.get("metadata", {}).get("labels", {})
    for key, value in requested.get("metadata", {}).get("labels", {}).items():
        if got_labels.get(key) != value:
            problems.append(f"metadata.labels[{key}]: asked {value!r}, stored {got_labels.get(key)!r}")
    return problems


def expired_daskjobs(jobs: Iterable[Mapping[str, Any]], now: datetime) -> list[str]:
    """Names of finished DaskJobs whose ``cubehub.io/ttl-seconds-after-finished`` has passed.

    Jobs without the annotation (not made by cubehub) or not finished are never listed.
    """
    expired = []
    for job in jobs:
        meta = job.get("metadata", {})
        ttl = meta.get("annotations", {}).get(TTL_ANNOTATION)
        status = job.get("status", {})
        if ttl is None or status.get("jobStatus") not in FINISHED_JOB_STATUSES or not status.get("endTime"):
            continue
        ended = datetime.strptime(status["endTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if ended + timedelta(seconds=int(ttl)) <= now:
            expired.append(str(meta["name"]))
    return expired
