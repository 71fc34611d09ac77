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

The settings, owner and pod template they are built from are in
:mod:`cubehub.clusters.kube`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cubehub.clusters.kube import (
    KubeSettings,
    PodOwner,
    PodSize,
    PodTemplate,
    check_name,
    labels_for,
)
from cubehub.errors import InputError

DASK_API_VERSION = "kubernetes.dask.org/v1"
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
#: The "restricted" Pod Security Standard, unless the pod template says otherwise.
RESTRICTED_POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def _container(
    base: Mapping[str, Any],
    size: PodSize,
    settings: KubeSettings,
    template: PodTemplate,
    extra_env: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """``base`` (name, image, args, ports, probes) completed with resources, environment and security."""
    container: dict[str, Any] = {"securityContext": copy.deepcopy(RESTRICTED_CONTAINER_SECURITY)}
    container.update(copy.deepcopy(dict(template.container)))
    container.update({k: v for k, v in base.items() if k not in ("env", "resources")})
    container["resources"] = size.resources()
    env = [*extra_env, *({"name": k, "value": v} for k, v in sorted(settings.env.items()))]
    if env:
        container["env"] = env
    env_from = [
        *template.container.get("envFrom", []),
        *({"secretRef": {"name": s}} for s in settings.secrets),
    ]
    if env_from:
        container["envFrom"] = env_from
    return container


def _pod_spec(
    container: Mapping[str, Any], size: PodSize, template: PodTemplate, **fields: Any
) -> dict[str, Any]:
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
    worker_container = _container(
        worker["spec"]["containers"][0], settings.worker, settings, template
    )
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
    cluster = cluster_spec(
        name,
        replace(settings, minimum=workers, maximum=workers),
        owner=None,
        user=user,
        template=template,
    )
    job_env = [
        {"name": JOB_ENV, "value": job_yaml},
        # The operator sets DASK_SCHEDULER_ADDRESS in the runner; backend address reads it.
        {"name": "DASK_CUBEHUB__CLUSTER__BACKEND", "value": "address"},
    ]
    # args, not command: the image's entrypoint (tini) stays PID 1 and forwards SIGTERM.
    base = {"name": "job", "image": settings.image, "args": ["cubehub", "run", f"env:{JOB_ENV}"]}
    runner_container = _container(base, runner, settings, template, extra_env=job_env)
    pod = _pod_spec(
        runner_container,
        runner,
        template,
        restartPolicy="Never",
        activeDeadlineSeconds=active_deadline_seconds,
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
        problems.append(
            f"metadata.ownerReferences: owner {sorted(want_owners - got_owners)} was not stored"
        )
    got_labels = applied.get("metadata", {}).get("labels", {})
    for key, value in requested.get("metadata", {}).get("labels", {}).items():
        if got_labels.get(key) != value:
            problems.append(
                f"metadata.labels[{key}]: asked {value!r}, stored {got_labels.get(key)!r}"
            )
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
        if (
            ttl is None
            or status.get("jobStatus") not in FINISHED_JOB_STATUSES
            or not status.get("endTime")
        ):
            continue
        ended = datetime.strptime(status["endTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if ended + timedelta(seconds=int(ttl)) <= now:
            expired.append(str(meta["name"]))
    return expired
