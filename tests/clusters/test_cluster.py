"""cubehub.cluster and cubehub.clusters.guards without a multi-process cluster: settings, errors, guards."""

from __future__ import annotations

import atexit
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import dask.config
import psutil
import pytest
from dask_kubernetes.operator import KubeCluster

import cubehub.clusters.backends
from cubehub import config
from cubehub.clusters.backends import cluster, kube_settings, pod_namespace, scheduler_address
from cubehub.clusters.guards import WorkerSettings, compare_versions, worker_environment
from cubehub.demo.servers import free_port
from cubehub.errors import ClusterError, ExitCode, InputError

CANARY = "canary-8d2e61f0-secret"


@pytest.fixture
def dask_env() -> Iterator[Callable[[str, str], None]]:
    """Set DASK_* environment variables and reload dask's config; both undone afterwards."""
    names: list[str] = []

    def setenv(name: str, value: str) -> None:
        names.append(name)
        os.environ[name] = value
        dask.config.refresh()

    yield setenv
    for name in names:
        os.environ.pop(name, None)
    dask.config.refresh()


def test_settings_resolve_argument_then_environment_then_packaged_yaml(
    dask_env: Callable[[str, str], None],
) -> None:
    assert config.get("cluster.backend") == "local"  # the packaged YAML
    assert config.get("cluster.kubernetes.idle_timeout") == 1800
    dask_env("DASK_CUBEHUB__CLUSTER__BACKEND", "address")
    dask_env("DASK_CUBEHUB__CLUSTER__ADDRESS", "tcp://10.1.2.3:8786")
    dask_env("DASK_CUBEHUB__CLUSTER__KUBERNETES__IDLE_TIMEOUT", "600")
    assert config.get("cluster.backend") == "address"
    assert config.get("cluster.backend", "kubernetes") == "kubernetes"
    assert scheduler_address() == "tcp://10.1.2.3:8786"
    assert scheduler_address("tcp://127.0.0.1:9999") == "tcp://127.0.0.1:9999"
    os.environ["JUPYTER_IMAGE_SPEC"] = "quay.io/cubehub/notebook:1"
    try:
        values, resolved = kube_settings(
            {"adaptive": {"maximum": 3}, "worker": {"memory": "16Gi"}}, "jhub"
        )
    finally:
        del os.environ["JUPYTER_IMAGE_SPEC"]
    assert resolved.idle_timeout == 600  # environment
    assert (resolved.minimum, resolved.maximum) == (0, 3)  # YAML, argument
    assert (resolved.worker.cpu, resolved.worker.memory) == ("1", "16Gi")  # YAML, argument
    assert (resolved.image, resolved.namespace) == ("quay.io/cubehub/notebook:1", "jhub")
    assert values["owner_pod"] is True


def test_address_falls_back_to_dasks_scheduler_address(
    dask_env: Callable[[str, str], None],
) -> None:
    # The operator sets DASK_SCHEDULER_ADDRESS in a DaskJob's runner pod.
    dask_env("DASK_SCHEDULER_ADDRESS", "tcp://cubehub-graz-scheduler.eo.svc.cluster.local:8786")
    assert scheduler_address() == "tcp://cubehub-graz-scheduler.eo.svc.cluster.local:8786"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"backend": "yarn"}, InputError, "use one of: local, address, kubernetes"),
        ({"backend": "address"}, InputError, "needs a scheduler address"),
        ({"backend": "address", "address": "tcp://no such host:87"}, InputError, "malformed"),
    ],
)
def test_bad_cluster_requests_fail_before_connecting(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as info, cluster(**kwargs):
        pass
    assert info.value.exit_code == ExitCode.BAD_INPUT  # type: ignore[attr-defined]


def test_unreachable_scheduler_is_a_cluster_error_within_the_timeout() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with (
        dask.config.set({"cubehub.cluster.connect_timeout": 2}),
        pytest.raises(ClusterError) as info,
        cluster("address", address=address),
    ):
        pass
    assert time.monotonic() - started < 15
    assert address in str(info.value) and "scheduler is running" in str(info.value)
    assert info.value.exit_code == ExitCode.CLUSTER


def test_kubernetes_backend_outside_a_pod_is_a_cluster_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with (
        pytest.raises(ClusterError, match="only inside a Kubernetes pod") as info,
        cluster("kubernetes"),
    ):
        pass
    assert info.value.exit_code == ExitCode.CLUSTER
    # Inside a pod, the namespace comes from the service-account mount.
    mounted = tmp_path / "namespace"
    mounted.write_text("eo-users\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert pod_namespace(mounted) == "eo-users"


def test_worker_environment_carries_gdal_and_endpoints_but_no_credentials() -> None:
    environ = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:8333",
        "AWS_REGION": "eu-central-1",
        "AWS_SECRET_ACCESS_KEY": CANARY,
        "AWS_ACCESS_KEY_ID": CANARY,
        "HOME": "/home/jovyan",
    }
    env = worker_environment(environ)
    assert env["GDAL_HTTP_MAX_RETRY"] == str(config.get("gdal")["GDAL_HTTP_MAX_RETRY"])
    assert env["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert (
        env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:8333" and env["AWS_REGION"] == "eu-central-1"
    )
    assert CANARY not in env.values() and "HOME" not in env
    with (
        dask.config.set({"cubehub.cluster.worker_env": {"AZURE_STORAGE_SAS_TOKEN": CANARY}}),
        pytest.raises(InputError, match="credentials"),
    ):
        worker_environment(environ)
    with (
        dask.config.set({"cubehub.cluster.forward_env": ["AWS_SECRET_ACCESS_KEY"]}),
        pytest.raises(InputError, match="AWS_SECRET_ACCESS_KEY"),
    ):
        worker_environment(environ)


def test_the_worker_plugin_pickles_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8333")
    plugin = WorkerSettings.from_config()
    payload = cloudpickle.dumps(plugin)
    assert CANARY.encode() not in payload
    assert b"http://127.0.0.1:8333" in payload
    with pytest.raises(InputError):
        WorkerSettings({"AWS_SESSION_TOKEN": CANARY}, {}, [], "error")


def _versions(
    client: dict[str, str], scheduler: dict[str, str], workers: dict[str, dict[str, str | None]]
) -> dict[str, Any]:
    return {
        "client": {"packages": client},
        "scheduler": {"packages": scheduler},
        "workers": {address: {"packages": packages} for address, packages in workers.items()},
    }


def test_compare_versions_reports_both_versions_and_where() -> None:
    mine = {"python": "3.11.7.final.0", "dask": "2026.8.0", "numpy": "2.4.0", "cubehub": "0.1.0"}
    versions = _versions(
        mine,
        {**mine, "python": "3.11.9.final.0", "numpy": "1.26.4"},  # the scheduler runs no task code
        {
            "tcp://10.0.0.7:40001": dict(mine),
            "tcp://10.0.0.8:40001": {**mine, "numpy": "2.3.1", "cubehub": None},
        },
    )
    found = compare_versions(versions, ["dask", "numpy", "cubehub"], ["dask"])
    assert [str(m) for m in found] == [
        "numpy 2.4.0 on the client, 2.3.1 on the worker tcp://10.0.0.8:40001",
        "cubehub 0.1.0 on the client, not installed on the worker tcp://10.0.0.8:40001",
    ]
    versions["scheduler"]["packages"]["python"] = "3.12.1.final.0"
    assert [m.where for m in compare_versions(versions, ["dask"], ["dask"])] == ["scheduler"]


def test_local_backend_starts_guarded_workers_and_stops_them() -> None:
    import cubehub

    # The public spelling, with the module cubehub.clusters.backends already imported (above).
    with cubehub.cluster("local", n_workers=1, threads_per_worker=1, dashboard=False) as client:
        seen = client.run(lambda: os.environ.get("GDAL_DISABLE_READDIR_ON_OPEN"))
        assert list(seen.values()) == ["EMPTY_DIR"]
        assert (
            "cubehub-worker-settings"
            in client.run(lambda dask_worker: list(dask_worker.plugins)).popitem()[1]
        )
        address = client.scheduler_info()["address"]
    with (
        dask.config.set({"cubehub.cluster.connect_timeout": 1}),
        pytest.raises(ClusterError),
        cluster("address", address=address),
    ):
        pass


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_local_cluster_listens_on_loopback_and_lets_its_workers_exit_in_their_time() -> None:
    nanny_log = logging.getLogger("distributed.nanny")
    records = _Records()
    nanny_log.addHandler(records)
    try:
        with cluster("local", n_workers=1, threads_per_worker=1) as client:
            port = client.scheduler_info()["services"]["dashboard"]
            listening = {
                c.laddr.ip
                for c in psutil.Process().net_connections("inet")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port
            }
            assert listening == {"127.0.0.1"}, "the dashboard must listen on loopback only"
            # A worker process that takes 6 s to exit (as one that has imported GDAL, numba
            # and zarr does on a busy machine), beyond distributed's fixed 4 s.
            client.run(_exit_slowly)
            (worker_pid,) = client.run(os.getpid).values()
    finally:
        nanny_log.removeHandler(records)
    assert not [m for m in records.messages if "still alive" in m], records.messages
    assert not psutil.pid_exists(worker_pid)


def test_kubernetes_backend_without_api_access_fails_cleanly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A pod without credentials for the API: one ClusterError, nothing left for dask-kubernetes's atexit."""
    mounted = tmp_path / "namespace"
    mounted.write_text("eo-users\n")
    monkeypatch.setattr(cubehub.clusters.backends, "NAMESPACE_FILE", mounted)
    # Loopback and a closed port: nothing may leave this machine.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(free_port()))
    monkeypatch.setenv("JUPYTER_IMAGE_SPEC", "registry.example.org/cubehub/notebook:1")
    monkeypatch.setenv("HOSTNAME", "jupyter-alice")
    monkeypatch.setenv("CUBEHUB_POD_UID", "5f1c2a9e-0b7d-4c1e-9a3f-2d6b8e4f7a10")
    monkeypatch.setenv("CUBEHUB_USER", "alice")
    with (
        pytest.raises(
            ClusterError, match=r"could not start cluster cubehub-alice-\w+ in eo-users"
        ) as info,
        cluster("kubernetes"),
    ):
        pass
    assert info.value.exit_code == ExitCode.CLUSTER
    assert not [i for i in KubeCluster._instances if i.name.startswith("cubehub-alice-")]
    monkeypatch.delenv("CUBEHUB_POD_UID")
    with pytest.raises(ClusterError, match="CUBEHUB_POD_UID"), cluster("kubernetes"):
        pass


def _exit_slowly() -> None:
    """Make the calling process take 6 s to exit (run on a worker)."""
    atexit.register(time.sleep, 6)
