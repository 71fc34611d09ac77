"""A job as a Kubernetes batch run: the DaskJob that runs ``cubehub run`` on its own cluster.

:func:`job_manifest` is what ``cubehub k8s job`` prints and what a notebook applies (e.g.
with kr8s): the job travels inside the manifest, the runner connects to the job's own Dask
cluster, and credentials go in by Secret reference only. Paths on this machine mean nothing
in the runner pod; each one in the job is reported as a :class:`~cubehub.errors.LocalPathWarning`.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from typing import Any

import yaml

from cubehub import config
from cubehub.catalog.search import ENV_PREFIX, is_static_source
from cubehub.clusters import kube, manifests
from cubehub.clusters.backends import kube_settings, pod_namespace, pod_template
from cubehub.credentials import redact
from cubehub.errors import ClusterError, InputError, LocalPathWarning
from cubehub.jobspec import CompositeJob
from cubehub.output.storage import protocol_of

__all__ = ["default_job_name", "job_manifest"]


def default_job_name(stem: str) -> str:
    """``cubehub-<stem>``, lower case, other characters as ``-``: a valid DaskJob name."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-") or "job"
    return f"cubehub-{cleaned}"[: kube.MAX_NAME_LENGTH].rstrip("-")


def job_manifest(
    job: CompositeJob,
    *,
    name: str | None = None,
    namespace: str | None = None,
    image: str | None = None,
    workers: int | None = None,
    secrets: Sequence[str] = (),
    deadline_s: int | None = None,
    ttl_s: int | None = None,
    owner_pod: bool | None = None,
) -> dict[str, Any]:
    """The ``DaskJob`` (a dict; ``yaml.safe_dump`` it for ``kubectl apply -f``) that runs ``job``.

    Args:
        job: the job; its ``cluster.kubernetes`` settings apply, its backend does not (the
            runner uses the job's own cluster).
        name: DaskJob (and cluster) name; default ``cubehub-<output store name>``.
        namespace: default the setting ``cubehub.cluster.kubernetes.namespace``, then the
            namespace of the pod this runs in.
        image: image of every pod; default the setting, then ``$JUPYTER_IMAGE_SPEC``.
        workers: Dask workers; default the setting ``cubehub.cluster.kubernetes.job.workers`` (4).
        secrets: Secrets whose keys become environment variables of every pod.
        deadline_s: ``activeDeadlineSeconds`` of the runner; default the setting (86400).
        ttl_s: seconds the finished job is kept for its logs; default the setting (604800).
        owner_pod: the notebook pod that renders it owns it (deleted with it); default yes
            inside a pod with ``$CUBEHUB_POD_UID`` when the job goes to the pod's namespace.

    Raises:
        InputError: no namespace or image, or an invalid name, size or owner.

    Warns:
        LocalPathWarning: for the output or a static catalog on this machine's disk.
    """
    overrides: dict[str, Any] = dict(job.cluster.overrides().get("kubernetes", {}))
    overrides.update({k: v for k, v in (("namespace", namespace), ("image", image)) if v})
    if secrets:
        overrides["secrets"] = list(secrets)
    try:
        here: str | None = pod_namespace()
    except ClusterError:
        here = None
    values, settings = kube_settings(overrides, here)
    owner = None
    if owner_pod or (
        owner_pod is None and here == settings.namespace and os.environ.get("CUBEHUB_POD_UID")
    ):
        if here is None:
            raise InputError(
                "--owner-pod (owner_pod=True) works only inside the notebook pod that should "
                "own the job"
            )
        owner = kube.PodOwner.from_environ(os.environ, here)
    _warn_local_paths(job)
    defaults = config.get("cluster.kubernetes.job")
    store = job.output.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zarr")
    job_name = kube.check_name(name or default_job_name(store), "DaskJob name (--name)")
    # The runner connects to the job's own cluster, whatever backend the job names.
    runner_job = job.model_dump(mode="json", exclude={"cluster"}) | {
        "cluster": {"backend": "address"}
    }
    _check_no_credentials(runner_job, settings.secrets)
    return manifests.daskjob_manifest(
        job_name,
        yaml.safe_dump(runner_job, sort_keys=False),
        settings,
        workers=workers or int(defaults["workers"]),
        runner=kube.PodSize.from_mapping(defaults["runner"]),
        active_deadline_seconds=deadline_s or int(defaults["active_deadline_seconds"]),
        ttl_seconds_after_finished=int(defaults["ttl_seconds_after_finished"])
        if ttl_s is None
        else ttl_s,
        owner=owner,
        user=os.environ.get("CUBEHUB_USER"),
        template=pod_template(values),
    )


def _check_no_credentials(job: dict[str, Any], secrets: Sequence[str]) -> None:
    """Refuse a job that would carry a credential into the manifest (its env is readable by
    anyone who may read DaskJobs); an ``env:NAME`` STAC API needs a Secret to come from."""
    carrying = sorted(key for key, value in job.items() if redact(value) != value)
    if carrying:
        raise InputError(
            f"the job's {', '.join(carrying)} holds credentials (user:password@ in a URL), which "
            "the DaskJob would carry in plain text; put the URL in a Secret (kubectl create "
            "secret generic stac-api --from-literal=CUBEHUB_STAC_API='<url>'), write "
            "`stac_api: env:CUBEHUB_STAC_API` in the job file and pass --secret stac-api"
        )
    if str(job["stac_api"]).startswith(ENV_PREFIX) and not secrets:
        raise InputError(
            f"stac_api {job['stac_api']!r} is read from the runner's environment, but no Secret "
            "gives it one; pass --secret with the Secret that holds it"
        )


def _warn_local_paths(job: CompositeJob) -> None:
    where = {"output": job.output}
    if is_static_source(job.stac_api):
        where["stac_api"] = job.stac_api
    for key, value in where.items():
        if protocol_of(value) == "file":
            warnings.warn(
                f"{key} {value} is a path on this machine: the runner pod sees its own disk, "
                f"which is deleted with the pod; give an object-store URL (s3://bucket/...)"
                + (" or a volume the pod mounts" if key == "stac_api" else ""),
                LocalPathWarning,
                stacklevel=3,
            )
