"""One way to get a Dask cluster: ``with cluster() as client: ...``.

Backends (setting ``cubehub.cluster.backend``, overridable per call):

* ``local``: a :class:`distributed.LocalCluster` of worker processes sized to this machine;
* ``address``: connect to an existing scheduler (``cubehub.cluster.address``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from distributed import Client, LocalCluster

from cubehub import config
from cubehub.errors import ClusterError, InputError

Backend = Literal["local", "address"]
log = logging.getLogger(__name__)


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
    dashboard: bool = True,
) -> Iterator[Client]:
    """A Dask client on the chosen backend; the cluster is shut down on exit.

    Args:
        backend: ``"local"`` or ``"address"``; default from setting ``cubehub.cluster.backend``.
        address: scheduler address for ``"address"``, e.g. ``tcp://10.0.0.5:8786``.
        n_workers, threads_per_worker: local cluster size; default :func:`local_worker_layout`.
        dashboard: serve the dashboard (local backend), default True.

    Example:
        >>> with cluster("local") as client:  # doctest: +SKIP
        ...     print(client.dashboard_link)
    """
    chosen = config.get("cluster.backend", backend)
    if chosen == "local":
        default_workers, default_threads = local_worker_layout()
        workers = config.get("cluster.local.n_workers", n_workers) or default_workers
        threads = config.get("cluster.local.threads_per_worker", threads_per_worker) or default_threads
        try:
            lc = LocalCluster(
                n_workers=workers,
                threads_per_worker=threads,
                processes=True,
                memory_limit=config.get("cluster.local.memory_limit"),
                dashboard_address=":0" if dashboard else None,
                host="127.0.0.1",
            )
        except Exception as exc:
            raise ClusterError(f"could not start a local Dask cluster: {exc}") from exc
        with lc, Client(lc) as client:
            yield client
    elif chosen == "address":
        target = config.get("cluster.address", address)
        if not target:
            raise InputError("backend 'address' needs a scheduler address, e.g. tcp://127.0.0.1:8786")
        try:
            client = Client(target, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {target}: {exc}; check the address and "
                "that the scheduler is running"
            ) from exc
        with client:
            yield client
    else:
        raise InputError(f"unknown cluster backend {chosen!r}; use one of: local, address")
