"""One way to get a Dask cluster: ``with cluster() as client: ...``.

Backends (setting ``cubehub.cluster.backend``, overridable per call or per job file):

* ``local``: a :class:`distributed.LocalCluster` of worker processes sized to this machine;
* ``address``: connect to an existing scheduler (``cubehub.cluster.address``, else dask's
  ``scheduler-address``, which ``DASK_SCHEDULER_ADDRESS`` sets — as the operator does in a
  DaskJob's runner pod);
* ``kubernetes``: a per-user cluster through the dask-kubernetes operator, from inside a
  pod: the notebook's image, the pod's namespace, adaptive workers, an idle timeout that is
  read back after creation (dask-kubernetes #882), the pod as owner, deleted on exit.

Settings resolve in one order: argument > environment variable (``DASK_CUBEHUB__...``) or
dask config file > the YAML shipped with cubehub (see :mod:`cubehub.config`). On every
backend the connection is guarded (:func:`cubehub.clusters.guards.install_guards`): versions are
compared and the worker settings plugin is registered.

Losing the cluster inside the block — the scheduler dies or becomes unreachable, or workers
die repeatedly on one task — raises :class:`~cubehub.errors.ClusterError`, whatever
distributed raised where it noticed. A local cluster's dashboard listens on loopback only.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import dask.config
import yaml
from distributed import Client, KilledWorker, LocalCluster, Nanny
from distributed.comm.core import CommClosedError

from cubehub import config
from cubehub.clusters import kube, manifests
from cubehub.clusters.guards import OnMismatch, install_guards
from cubehub.clusters.main_guard import check_main_guard
from cubehub.clusters.spec import BACKENDS, Backend
from cubehub.config import LOOPBACK
from cubehub.errors import ClusterError, CubehubError, InputError

log = logging.getLogger(__name__)

#: Where Kubernetes mounts the pod's namespace (with its service-account token).
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_ADDRESS = re.compile(r"^([a-z]+://)?[^\s:/]+(:\d+)?$")


def local_worker_layout(cores: int | None = None) -> tuple[int, int]:
    """(worker processes, threads per worker) for this machine: one process per 2 cores.

    Processes sidestep the GIL for Python-level work; two threads per process let the
    GIL-free parts (GDAL reads, the numba percentile kernel) overlap.
    """
    cores = cores or os.cpu_count() or 1
    workers = max(1, cores // 2)
    return workers, max(1, cores // workers)


@contextmanager
def cluster(
    backend: Backend | None = None,
    *,
    address: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    kubernetes: Mapping[str, Any] | None = None,
    dashboard: bool = True,
    on_mismatch: OnMismatch | None = None,
) -> Iterator[Client]:
    """A Dask client on the chosen backend, guarded; a cluster started here is shut down on exit.

    Args:
        backend: ``"local"``, ``"address"`` or ``"kubernetes"``; default setting
            ``cubehub.cluster.backend`` (``local``).
        address: scheduler address for ``"address"``, e.g. ``tcp://10.0.0.5:8786``.
        n_workers, threads_per_worker: local cluster size; default :func:`local_worker_layout`.
        kubernetes: overrides of the ``cubehub.cluster.kubernetes`` settings, e.g.
            ``{"adaptive": {"maximum": 20}, "worker": {"memory": "8Gi"}}``.
        dashboard: serve the dashboard (local backend, on 127.0.0.1), default True.
        on_mismatch: ``"error"`` or ``"warn"`` when package versions differ between client,
            scheduler and workers; default setting ``cubehub.versions.on_mismatch`` (error).

    Raises:
        InputError: an unknown backend or a malformed address or setting.
        ClusterError: no scheduler at the address, no Kubernetes around, the operator
            failed, or versions differ (:class:`cubehub.errors.VersionMismatchError`); or,
            from the block, the scheduler was lost or workers kept dying on a task.

    Example:
        >>> with cluster("local", n_workers=1, dashboard=False) as client:
        ...     client.submit(sum, [1, 2, 3]).result()
        6
    """
    chosen = config.get("cluster.backend", backend)
    if chosen not in BACKENDS:
        raise InputError(f"unknown cluster backend {chosen!r}; use one of: {', '.join(BACKENDS)}")
    if chosen == "local":
        with _local(n_workers, threads_per_worker, dashboard) as client:
            install_guards(client, on_mismatch=on_mismatch)
            with _cluster_errors(client, "the local Dask cluster"):
                yield client
    elif chosen == "address":
        with _connect(address) as client:
            install_guards(client, on_mismatch=on_mismatch)
            with _cluster_errors(client, f"the Dask scheduler at {scheduler_address(address)}"):
                yield client
    else:
        with (
            _kubernetes(kubernetes or {}) as kube_cluster,
            _client(kube_cluster, "the Kubernetes Dask cluster") as client,
        ):
            install_guards(client, on_mismatch=on_mismatch)
            with _cluster_errors(client, "the Kubernetes Dask cluster"):
                yield client


@contextmanager
def _cluster_errors(client: Client, what: str) -> Iterator[None]:
    """Errors in the block that mean the cluster was lost, as :class:`ClusterError`.

    When the scheduler goes away distributed raises whatever fits where it notices —
    ``CommClosedError``, ``CancelledError``, a plain ``OSError`` or ``TimeoutError`` of a
    reconnect — so the client's state decides, not the exception's type (distributed closes
    the client after ``distributed.comm.timeouts.connect`` without its scheduler).
    """
    try:
        yield
    except CubehubError:
        raise
    except KilledWorker as exc:
        raise ClusterError(
            f"workers died repeatedly while running a task ({exc}); give workers more memory "
            "or lower chunk_size"
        ) from exc
    except Exception as exc:
        if client.status == "running" and not isinstance(exc, CommClosedError):
            raise
        raise ClusterError(
            f"lost the connection to {what} ({type(exc).__name__}: {exc}); check that the "
            "scheduler is running and reachable, then rerun (completed tiles are kept)"
        ) from exc


class _PatientNanny(Nanny):
    """A nanny that gives its worker process time to exit when the cluster closes.

    A process that has imported the geospatial stack (GDAL, numba, zarr) takes seconds to
    tear down on a busy machine; distributed's nanny waits a fixed 4 s, then kills it and
    warns ("Worker process still alive after 4.0 seconds, killing") on every close.
    """

    async def close(  # type: ignore[override]
        self, timeout: float = 0.0, reason: str = "nanny-close"
    ) -> Literal["OK"]:
        wait = max(timeout, float(config.get("cluster.local.close_timeout")))
        return await super().close(timeout=wait, reason=reason)


@contextmanager
def _local(
    n_workers: int | None, threads_per_worker: int | None, dashboard: bool
) -> Iterator[Client]:
    check_main_guard()  # before any process starts: workers import the script again
    default_workers, default_threads = local_worker_layout()
    workers = config.get("cluster.local.n_workers", n_workers) or default_workers
    threads = config.get("cluster.local.threads_per_worker", threads_per_worker) or default_threads
    try:
        lc = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads,
            processes=True,
            worker_class=_PatientNanny,
            # Worker processes print to this process's stderr; a failed task's report (with
            # its traceback) repeats the error the caller gets from the task anyway.
            silence_logs=logging.getLevelName(str(config.get("cluster.local.worker_logs")).upper()),
            memory_limit=config.get("cluster.local.memory_limit"),
            # Loopback, as every server cubehub starts: ":0" would listen on all interfaces.
            dashboard_address=f"{LOOPBACK}:0" if dashboard else None,
            host=LOOPBACK,
        )
    except Exception as exc:
        raise ClusterError(f"could not start a local Dask cluster: {exc}") from exc
    with lc, Client(lc) as client:
        yield client


def dashboard_link(client: Client) -> str:
    """The client's dashboard link, or why there is none: a log line must never stop a run.

    distributed formats ``distributed.dashboard.link`` with the process environment, so a
    template naming a variable this process lacks (``{JUPYTERHUB_SERVICE_PREFIX}`` outside
    JupyterHub) raises ``KeyError`` on every access.
    """
    try:
        return str(client.dashboard_link)
    except (KeyError, IndexError, ValueError) as exc:
        return f"unavailable (distributed.dashboard.link cannot be formatted here: {type(exc).__name__} {exc})"


def scheduler_address(address: str | None = None) -> str:
    """The scheduler address: argument > ``cubehub.cluster.address`` > dask's ``scheduler-address``."""
    target = config.get("cluster.address", address) or dask.config.get("scheduler-address", None)
    if not target:
        raise InputError(
            "backend 'address' needs a scheduler address, e.g. tcp://127.0.0.1:8786: pass --address, "
            "set cluster.address in the job file, or DASK_CUBEHUB__CLUSTER__ADDRESS"
        )
    if not _ADDRESS.match(str(target)):
        raise InputError(f"scheduler address {target!r} is malformed; write it as tcp://host:port")
    return str(target)


@contextmanager
def _client(target: Any, what: str) -> Iterator[Client]:
    timeout = float(config.get("cluster.connect_timeout"))
    try:
        client = Client(target, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"cannot reach {what} within {timeout:g} s ({exc}); check the address and that the "
            "scheduler is running"
        ) from exc
    with client:
        yield client


@contextmanager
def _connect(address: str | None) -> Iterator[Client]:
    target = scheduler_address(address)
    with _client(target, f"the Dask scheduler at {target}") as client:
        yield client


def pod_namespace(namespace_file: Path | None = None) -> str:
    """The namespace of the pod this runs in (from :data:`NAMESPACE_FILE`); :class:`ClusterError` outside Kubernetes."""
    namespace_file = namespace_file or NAMESPACE_FILE
    if "KUBERNETES_SERVICE_HOST" not in os.environ or not namespace_file.is_file():
        raise ClusterError(
            "backend 'kubernetes' works only inside a Kubernetes pod (no KUBERNETES_SERVICE_HOST "
            f"or {namespace_file}); here use backend 'local', or 'address' with a scheduler address"
        )
    return namespace_file.read_text().strip()


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        elif value is not None:
            out[key] = value
    return out


def kube_settings(
    overrides: Mapping[str, Any], pod_ns: str | None
) -> tuple[dict[str, Any], kube.KubeSettings]:
    """The merged ``cubehub.cluster.kubernetes`` settings and the :class:`kube.KubeSettings` from them."""
    values = _merged(config.get("cluster.kubernetes"), overrides)
    return values, kube.resolve_settings(values, os.environ, pod_ns)


def pod_template(values: Mapping[str, Any]) -> kube.PodTemplate:
    """The Dask pod template named by the settings or ``$CUBEHUB_DASK_POD_TEMPLATE``; empty if none."""
    path = values.get("pod_template") or os.environ.get("CUBEHUB_DASK_POD_TEMPLATE")
    if not path:
        return kube.PodTemplate()
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read the Dask pod template {path}: {exc}") from None
    return kube.PodTemplate.from_mapping(raw, f"Dask pod template {path}")


@contextmanager
def _kubernetes(overrides: Mapping[str, Any]) -> Iterator[Any]:
    pod_ns = pod_namespace()
    values, settings = kube_settings(overrides, pod_ns)
    owner = (
        kube.PodOwner.from_environ(os.environ, pod_ns) if values.get("owner_pod", True) else None
    )
    user = os.environ.get("CUBEHUB_USER")
    name = kube.cluster_name(user, uuid.uuid4().hex)
    spec = manifests.cluster_spec(
        name, settings, owner=owner, user=user, template=pod_template(values)
    )
    from dask_kubernetes.operator import KubeCluster
    from dask_kubernetes.operator.kubecluster.kubecluster import CreateMode

    log.info(
        "creating DaskCluster %s in namespace %s (image %s)",
        name,
        settings.namespace,
        settings.image,
    )
    try:
        kc = KubeCluster(
            custom_cluster_spec=spec,
            namespace=settings.namespace,
            create_mode=CreateMode.CREATE_ONLY,
            shutdown_on_close=True,
            resource_timeout=int(values.get("resource_timeout", 300)),
            quiet=True,
        )
    except Exception as exc:
        _abandon(KubeCluster, name)
        raise ClusterError(
            f"the dask-kubernetes operator could not start cluster {name} in {settings.namespace}: "
            f"{exc}; check that the operator and its CRDs are installed and this pod's RBAC allows "
            "daskclusters"
        ) from exc
    try:
        problems = manifests.check_applied(spec, _read_back(name, settings.namespace))
        if problems:
            raise ClusterError(
                f"DaskCluster {name} was not created as asked: " + "; ".join(problems)
            )
        kc.adapt(minimum=settings.minimum, maximum=settings.maximum)
        yield kc
    finally:
        kc.close()


def _abandon(kube_cluster_class: Any, name: str) -> None:
    """Delete what a failed ``KubeCluster`` start left, now rather than in dask-kubernetes's atexit hook.

    The half-started object stays registered for that hook, which would otherwise try
    again at interpreter exit and print a traceback after cubehub's one-line error.
    """
    for instance in [i for i in kube_cluster_class._instances if i.name == name]:
        try:
            instance.close(timeout=30)
        except Exception as exc:
            log.warning("could not delete DaskCluster %s after the failed start: %s", name, exc)
        kube_cluster_class._instances.discard(instance)


def _read_back(name: str, namespace: str) -> dict[str, Any]:
    """The DaskCluster as the API server stored it."""
    import kr8s

    try:
        found = kr8s.get("daskclusters.kubernetes.dask.org", name, namespace=namespace)
    except Exception as exc:
        raise ClusterError(f"cannot read back DaskCluster {name}: {exc}") from exc
    if not found:
        raise ClusterError(f"DaskCluster {name} vanished right after creation")
    return dict(found[0].raw)


__all__ = [
    "BACKENDS",
    "Backend",
    "cluster",
    "dashboard_link",
    "kube_settings",
    "local_worker_layout",
    "pod_namespace",
    "pod_template",
    "scheduler_address",
]
