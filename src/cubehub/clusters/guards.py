"""Guardrails on every cluster connection: matching versions, worker settings, no secrets.

* :func:`check_versions` compares the package versions of client, scheduler and workers
  (setting ``cubehub.versions``) and refuses a mismatch that matters, or warns when
  ``cubehub.versions.on_mismatch`` is ``warn``. The report names the package, both versions
  and where each runs.
* :class:`WorkerSettings` is a worker plugin that sets the GDAL options (``cubehub.gdal``)
  and the non-secret object-store settings (``cubehub.cluster.forward_env``,
  ``cubehub.cluster.worker_env``) in every worker's environment, also on workers that join
  later, and checks that worker's versions when it joins. It carries no credentials: those
  reach workers only through their own environment (a Kubernetes Secret by reference) or
  the cloud's workload identity, never pickled into a plugin or a task.
"""

from __future__ import annotations

import asyncio
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from distributed import Client, Worker
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.versions import get_versions

from cubehub import config
from cubehub.clusters.kube import check_no_secret_env
from cubehub.errors import InputError, VersionMismatchError

log = logging.getLogger(__name__)
OnMismatch = Literal["error", "warn"]
PLUGIN_NAME = "cubehub-worker-settings"


class VersionMismatchWarning(UserWarning):
    """Client, scheduler or workers run different versions (``on_mismatch: warn``)."""


@dataclass(frozen=True)
class VersionMismatch:
    """One package whose version differs between the client and one other process."""

    package: str
    client: str | None
    other: str | None
    where: str
    """``"scheduler"`` or ``"worker tcp://..."``."""

    def __str__(self) -> str:
        def shown(v: str | None) -> str:
            return v if v is not None else "not installed"

        return f"{self.package} {shown(self.client)} on the client, {shown(self.other)} on the {self.where}"


def _comparable(package: str, version: str | None) -> str | None:
    # Pickles cross Python patch releases, not minor ones.
    if package == "python" and version is not None:
        return ".".join(version.split(".")[:2])
    return version


def _differences(
    client: Mapping[str, str | None],
    other: Mapping[str, str | None],
    packages: Sequence[str],
    where: str,
) -> list[VersionMismatch]:
    return [
        VersionMismatch(p, client.get(p), other.get(p), where)
        for p in ("python", *packages)
        if _comparable(p, client.get(p)) != _comparable(p, other.get(p))
    ]


def compare_versions(
    versions: Mapping[str, Any], packages: Sequence[str], scheduler_packages: Sequence[str]
) -> list[VersionMismatch]:
    """Mismatches in a :meth:`distributed.Client.get_versions` result.

    Workers are held to ``packages`` (they run task code), the scheduler to
    ``scheduler_packages`` (it only routes tasks); Python is compared by minor version.
    """
    client = versions["client"]["packages"]
    found = _differences(client, versions["scheduler"]["packages"], scheduler_packages, "scheduler")
    for address, info in sorted(versions["workers"].items()):
        if not isinstance(info, Mapping) or "packages" not in info:
            continue  # a worker that left while being asked
        found += _differences(client, info["packages"], packages, f"worker {address}")
    return found


def _on_mismatch(value: str | None) -> OnMismatch:
    chosen = config.get("versions.on_mismatch", value)
    if chosen == "error":
        return "error"
    if chosen == "warn":
        return "warn"
    raise InputError(f"cubehub.versions.on_mismatch must be 'error' or 'warn', got {chosen!r}")


def _report(mismatches: Sequence[VersionMismatch], on_mismatch: OnMismatch) -> None:
    if not mismatches:
        return
    text = "; ".join(str(m) for m in mismatches)
    if on_mismatch == "error":
        raise VersionMismatchError(
            f"package versions differ: {text}. Run the client, scheduler and workers from the same "
            "image or lock file, or set cubehub.versions.on_mismatch=warn "
            "(DASK_CUBEHUB__VERSIONS__ON_MISMATCH=warn) to go on regardless"
        )
    warnings.warn(f"package versions differ: {text}", VersionMismatchWarning, stacklevel=3)


def check_versions(
    client: Client, *, on_mismatch: OnMismatch | None = None
) -> list[VersionMismatch]:
    """Compare client, scheduler and workers; raise or warn on a mismatch; return the mismatches.

    Args:
        client: a connected client.
        on_mismatch: ``"error"`` (raise :class:`cubehub.errors.VersionMismatchError`) or
            ``"warn"``; default setting ``cubehub.versions.on_mismatch`` (``error``).
    """
    mode = _on_mismatch(on_mismatch)
    packages = list(config.get("versions.packages"))
    scheduler_packages = list(config.get("versions.scheduler"))
    versions: Mapping[str, Any] = client.get_versions(packages=packages)  # type: ignore[assignment]
    mismatches = compare_versions(versions, packages, scheduler_packages)
    _report(mismatches, mode)
    return mismatches


def worker_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment :class:`WorkerSettings` sets on workers, built from the settings.

    GDAL options (``cubehub.gdal``), then the ``cubehub.cluster.forward_env`` variables set
    in ``environ`` (default: this process's), then ``cubehub.cluster.worker_env``. Raises
    :class:`InputError` if any of them names a credential.
    """
    environ = os.environ if environ is None else environ
    env = config.gdal_env()
    env.update(
        {name: environ[name] for name in config.get("cluster.forward_env") if name in environ}
    )
    env.update({str(k): str(v) for k, v in (config.get("cluster.worker_env") or {}).items()})
    check_no_secret_env(
        env, "the worker environment (cubehub.gdal, cluster.forward_env, cluster.worker_env)"
    )
    return env


class WorkerSettings(WorkerPlugin):
    """Sets non-secret environment variables on every worker and checks its versions.

    A worker that joins later and runs different versions of the ``cubehub.versions``
    packages is closed when ``on_mismatch`` is ``error`` (its nanny too, so it is not
    restarted), and logs a warning when it is ``warn``.
    """

    name = PLUGIN_NAME
    idempotent = False  # a later registration (new settings) replaces the old one

    def __init__(
        self,
        env: Mapping[str, str],
        client_packages: Mapping[str, str | None],
        packages: Sequence[str],
        on_mismatch: OnMismatch,
    ) -> None:
        check_no_secret_env(env, "WorkerSettings.env")
        self.env = dict(env)
        self.client_packages = dict(client_packages)
        self.packages = list(packages)
        self.on_mismatch = on_mismatch
        self.mismatches: list[VersionMismatch] = []

    @classmethod
    def from_config(cls, *, on_mismatch: OnMismatch | None = None) -> WorkerSettings:
        packages = list(config.get("versions.packages"))
        mine = get_versions(packages)["packages"]
        return cls(worker_environment(), mine, packages, _on_mismatch(on_mismatch))

    def setup(self, worker: Worker) -> None:
        os.environ.update(self.env)
        theirs = get_versions(self.packages)["packages"]
        self.mismatches = _differences(
            self.client_packages, theirs, self.packages, f"worker {worker.address}"
        )
        if not self.mismatches:
            return
        text = "; ".join(str(m) for m in self.mismatches)
        if self.on_mismatch == "warn":
            log.warning("cubehub: package versions differ: %s", text)
            return
        log.error("cubehub: closing this worker, its package versions differ: %s", text)
        # Closed from the event loop once setup has returned, nanny included (no restart).
        asyncio.get_running_loop().call_soon(
            lambda: asyncio.ensure_future(
                worker.close(reason="cubehub version mismatch", nanny=True)
            )
        )


def install_guards(
    client: Client, *, on_mismatch: OnMismatch | None = None
) -> list[VersionMismatch]:
    """Check versions, then register :class:`WorkerSettings` on the cluster; the mismatches found."""
    mismatches = check_versions(client, on_mismatch=on_mismatch)
    client.register_plugin(WorkerSettings.from_config(on_mismatch=on_mismatch))
    return mismatches
