"""cubehub's KubeSpawner integration, run by the JupyterHub hub at start-up.

The cubehub chart mounts this file into /usr/local/etc/jupyterhub/jupyterhub_config.d/, where
the JupyterHub chart's jupyterhub_config.py executes it after its own settings (so the traitlets
config object ``c`` is defined, and the chart's KubeSpawner volumes and mounts are dicts), and
the whole ConfigMap, with the settings the chart rendered, at /usr/local/etc/cubehub/.

Every user gets a namespace of their own (KubeSpawner's user namespaces), created with the
"restricted" Pod Security Standard and, before every spawn, filled with what the chart rendered
for it: the user's ServiceAccount bound to the Dask ClusterRole, a ResourceQuota, a
LimitRange, the NetworkPolicies, the Dask configuration, and copies of the object-store and
image-pull Secrets. One user's pods can then neither reach nor manage another's Dask clusters.
Every notebook pod

- runs as its namespace's "cubehub-user" ServiceAccount (RBAC for Dask clusters there only,
  workload identity);
- reads the Dask defaults and the Dask pod template; its dashboard link goes through its server
  proxy;
- gets the object-store environment (a ConfigMap, and the credentials Secret by reference),
  added to any envFrom the deployment set;
- carries the label ``cubehub.io/user`` (KubeSpawner's ``{username}``), and knows its own name,
  UID and namespace, so its clusters are owned by it and deleted with it.

A deployment's own ``modify_pod_hook`` stays free: cubehub works in its spawner class. When an
upgrade changes the mounted ConfigMap, the hub stops itself within a minute so that Kubernetes
restarts it with the new files (user servers keep running).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client

#: Where the chart mounts the cubehub-hub ConfigMap (settings and this file), kept current by
#: the kubelet.
CUBEHUB_HUB_DIR = Path("/usr/local/etc/cubehub")
#: Label that ties notebook pods and Dask pods to their user; value: KubeSpawner's {username}.
CUBEHUB_USER_LABEL = "cubehub.io/user"
#: Seconds between two looks at the mounted ConfigMap.
CUBEHUB_WATCH_SECONDS = 60
#: The API call per kind of object the hub writes into a user namespace: (client, suffix).
CUBEHUB_APIS = {
    "ServiceAccount": ("CoreV1Api", "service_account"),
    "ConfigMap": ("CoreV1Api", "config_map"),
    "Secret": ("CoreV1Api", "secret"),
    "ResourceQuota": ("CoreV1Api", "resource_quota"),
    "LimitRange": ("CoreV1Api", "limit_range"),
    "RoleBinding": ("RbacAuthorizationV1Api", "role_binding"),
    "NetworkPolicy": ("NetworkingV1Api", "network_policy"),
}
log = logging.getLogger("cubehub")


def cubehub_load_settings(directory: Path = CUBEHUB_HUB_DIR) -> dict[str, Any]:
    """The settings the chart rendered into hub-settings.json."""
    settings: dict[str, Any] = json.loads((directory / "hub-settings.json").read_text())
    return settings


def cubehub_digest(directory: Path = CUBEHUB_HUB_DIR) -> str:
    """A digest of the mounted ConfigMap's files (the kubelet swaps them all at once)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if not p.name.startswith(".")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cubehub_fill(value: Any, namespace: str) -> Any:
    """``value`` with every "{namespace}" in its strings replaced by ``namespace``."""
    if isinstance(value, dict):
        return {k: cubehub_fill(v, namespace) for k, v in value.items()}
    if isinstance(value, list):
        return [cubehub_fill(v, namespace) for v in value]
    return value.replace("{namespace}", namespace) if isinstance(value, str) else value


def cubehub_namespace_objects(settings: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """The objects the hub writes into a user's namespace, as the chart rendered them."""
    objects = []
    for manifest in cubehub_fill(copy.deepcopy(settings["namespaceObjects"]), namespace):
        manifest["metadata"]["namespace"] = namespace
        objects.append(manifest)
    return objects


def cubehub_copied_secret(secret: Any, namespace: str) -> dict[str, Any]:
    """A Secret of the hub's namespace as the copy in ``namespace``: data and type only."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret.metadata.name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "cubehub-hub"},
        },
        "type": secret.type,
        "data": secret.data,
    }


async def cubehub_apply(manifest: dict[str, Any]) -> None:
    """Create ``manifest``, or replace the object an earlier spawn wrote."""
    client, suffix = CUBEHUB_APIS[manifest["kind"]]
    api = shared_client(client)
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        await getattr(api, f"create_namespaced_{suffix}")(namespace, manifest)
    except ApiException as error:
        if error.status != 409:
            raise
        await getattr(api, f"replace_namespaced_{suffix}")(name, namespace, manifest)


class CubehubSpawner(KubeSpawner):
    """KubeSpawner that prepares each user's own namespace before every spawn."""

    #: The chart's settings, with "hubNamespace" (set by :func:`cubehub_configure`).
    cubehub_settings: ClassVar[dict[str, Any]] = {}

    def cubehub_namespace_objects(self) -> list[dict[str, Any]]:
        """What this user's namespace gets (without the copied Secrets)."""
        return cubehub_namespace_objects(self.cubehub_settings, self.namespace)

    async def _ensure_namespace(self) -> None:
        await super()._ensure_namespace()
        core = shared_client("CoreV1Api")
        found = await core.read_namespace(self.namespace)
        labels = found.metadata.labels or {}
        settings = self.cubehub_settings
        wanted = settings["namespaceLabels"]
        missing = {k: v for k, v in wanted.items() if labels.get(k) != v}
        if missing:
            # An existing namespace the hub did not create: never take it over.
            raise RuntimeError(
                f"namespace {self.namespace} exists without the labels {missing} that the hub "
                "gives the user namespaces it creates: delete it, or label it so if it is this "
                "user's"
            )
        for manifest in self.cubehub_namespace_objects():
            await cubehub_apply(manifest)
        for name in settings["copySecrets"]:
            secret = await core.read_namespaced_secret(name, settings["hubNamespace"])
            await cubehub_apply(cubehub_copied_secret(secret, self.namespace))

    async def delete_forever(self) -> None:
        """Deleting the user deletes their namespace: home volume, clusters, policies."""
        await super().delete_forever()
        if self.delete_pvc:
            try:
                await shared_client("CoreV1Api").delete_namespace(self.namespace)
            except ApiException as error:
                if error.status != 404:
                    raise


def cubehub_merge(current: Any, key: str, item: dict[str, Any]) -> Any:
    """``current`` (KubeSpawner's volumes or volume_mounts: a dict, as z2jh sets them, or a
    list) with ``item`` added under ``key``."""
    if isinstance(current, dict):
        return {**current, key: item}
    return [*current, item]


def cubehub_configure(config: Any, settings: dict[str, Any], hub_namespace: str) -> None:
    """Add cubehub's pieces to the hub config, keeping what the chart and the deployment set."""
    CubehubSpawner.cubehub_settings = {**settings, "hubNamespace": hub_namespace}
    config.JupyterHub.spawner_class = CubehubSpawner
    # The notebooks live in other namespaces: they reach the hub by its fully qualified name.
    url = urlsplit(config.JupyterHub.hub_connect_url)
    config.JupyterHub.hub_connect_url = url._replace(
        netloc=f"{url.hostname}.{hub_namespace}.svc:{url.port}"
    ).geturl()
    spawner = config.KubeSpawner
    spawner.enable_user_namespaces = True
    spawner.user_namespace_template = settings["namespaceTemplate"]
    spawner.user_namespace_labels = settings["namespaceLabels"]
    spawner.service_account = settings["serviceAccount"]
    volumes = cubehub_merge(
        spawner.get("volumes", {}),
        "cubehub-dask-config",
        {"name": "cubehub-dask-config", "configMap": {"name": settings["daskConfigMap"]}},
    )
    mounts = spawner.get("volume_mounts", {})
    for key, path in (
        ("cubehub.yaml", settings["daskConfigPath"]),
        ("cubehub-notebook.yaml", settings["notebookDaskConfigPath"]),
        ("dask-pod.yaml", settings["podTemplatePath"]),
    ):
        mount = {"name": "cubehub-dask-config", "mountPath": path, "subPath": key, "readOnly": True}
        mounts = cubehub_merge(mounts, f"cubehub-{key}", mount)
    spawner.volumes, spawner.volume_mounts = volumes, mounts
    spawner.extra_labels = {
        **spawner.get("extra_labels", {}),
        CUBEHUB_USER_LABEL: "{username}",
        **settings["podLabels"],
    }
    spawner.environment = {
        **spawner.get("environment", {}),
        "CUBEHUB_USER": "{username}",
        "CUBEHUB_DASK_POD_TEMPLATE": settings["podTemplatePath"],
        # The notebook pod owns the clusters it starts: they go when the server stops.
        "CUBEHUB_POD_NAME": {"valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        "CUBEHUB_POD_UID": {"valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        # The dashboard proxy admits only this namespace's schedulers.
        "CUBEHUB_NAMESPACE": {"valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    }
    container = dict(spawner.get("extra_container_config", {}))
    env_from = list(container.get("envFrom", []))
    container["envFrom"] = env_from + [e for e in settings["envFrom"] if e not in env_from]
    spawner.extra_container_config = container


async def cubehub_watch(directory: Path, digest: str, seconds: float) -> None:
    """Stop the hub (SIGTERM, a clean shutdown) once the mounted ConfigMap has changed."""
    while True:
        await asyncio.sleep(seconds)
        if cubehub_digest(directory) != digest:
            log.warning("cubehub's hub settings changed: stopping the hub to load them")
            os.kill(os.getpid(), signal.SIGTERM)
            return


def cubehub_start_watching(directory: Path = CUBEHUB_HUB_DIR) -> None:
    """Watch the mount from the hub's event loop (running while JupyterHub loads its config)."""
    task = asyncio.get_running_loop().create_task(
        cubehub_watch(directory, cubehub_digest(directory), CUBEHUB_WATCH_SECONDS)
    )
    # The loop keeps only weak references to tasks.
    CUBEHUB_TASKS.add(task)


CUBEHUB_TASKS: set[asyncio.Task[None]] = set()

cubehub_configure(c, cubehub_load_settings(), os.environ["POD_NAMESPACE"])  # type: ignore[name-defined]  # noqa: F821
cubehub_start_watching()
