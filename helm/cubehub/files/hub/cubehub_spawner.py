"""cubehub's KubeSpawner integration, run by the JupyterHub hub at start-up.

The cubehub chart mounts this file into /usr/local/etc/jupyterhub/jupyterhub_config.d/, where
the JupyterHub chart's jupyterhub_config.py executes it in its own namespace (so the traitlets
config object ``c`` is defined), and the settings the chart rendered into
/usr/local/etc/cubehub/hub-settings.json. It makes every notebook pod

- run as the cubehub user ServiceAccount (RBAC for Dask clusters, workload identity);
- read the Dask defaults (/etc/dask/cubehub.yaml) and the Dask pod template;
- get the object-store environment (a ConfigMap, and the credentials Secret by reference);
- carry the label ``cubehub.io/user`` (KubeSpawner's ``{username}`` slug), which cubehub puts
  on the DaskClusters it creates, so the operator puts it on their pods;
- know its own name and UID ($CUBEHUB_POD_NAME, $CUBEHUB_POD_UID), so its clusters are owned
  by it and deleted with it;

and, before each spawn, writes the NetworkPolicy through which this user's notebook, and no
other pod but the cluster's own, reaches this user's Dask schedulers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

#: Label that ties notebook pods and Dask pods to their user; value: KubeSpawner's {username}.
CUBEHUB_USER_LABEL = "cubehub.io/user"
#: Dask scheduler ports a notebook uses: the comm port and the dashboard (via the server proxy).
CUBEHUB_SCHEDULER_PORTS = (8786, 8787)


def cubehub_load_settings() -> dict[str, Any]:
    """The settings the chart rendered (path overridable with $CUBEHUB_HUB_SETTINGS)."""
    path = os.environ.get("CUBEHUB_HUB_SETTINGS", "/usr/local/etc/cubehub/hub-settings.json")
    with open(path, encoding="utf-8") as f:
        settings: dict[str, Any] = json.load(f)
    return settings


def cubehub_user_scheduler_policy(user: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The NetworkPolicy that opens ``user``'s Dask schedulers to ``user``'s notebook pods.

    ``user`` is the value of the notebook pod's ``cubehub.io/user`` label. The source must not
    be a Dask pod (no ``dask.org/component`` label): users shape the labels of Dask pods
    through the operator, but not those of the notebook pods KubeSpawner creates.
    """
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"cubehub-dask-{user}",
            "labels": {**settings["policyLabels"], CUBEHUB_USER_LABEL: user},
        },
        "spec": {
            "podSelector": {
                "matchLabels": {"dask.org/component": "scheduler", CUBEHUB_USER_LABEL: user}
            },
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchLabels": {
                                    **settings["notebookLabels"],
                                    CUBEHUB_USER_LABEL: user,
                                },
                                "matchExpressions": [
                                    {"key": "dask.org/component", "operator": "DoesNotExist"}
                                ],
                            }
                        }
                    ],
                    "ports": [
                        {"port": port, "protocol": "TCP"} for port in CUBEHUB_SCHEDULER_PORTS
                    ],
                }
            ],
        },
    }


def cubehub_policy_hook(settings: dict[str, Any]) -> Callable[[Any, Any], Awaitable[Any]]:
    """A KubeSpawner ``modify_pod_hook`` that creates or replaces the user's scheduler policy."""

    async def write_user_scheduler_policy(spawner: Any, pod: Any) -> Any:
        # Imported here: these exist in the hub image, not where this module is unit-tested.
        from kubernetes_asyncio.client.rest import ApiException
        from kubespawner.clients import shared_client

        body = cubehub_user_scheduler_policy(pod.metadata.labels[CUBEHUB_USER_LABEL], settings)
        api = shared_client("NetworkingV1Api")
        try:
            await api.create_namespaced_network_policy(spawner.namespace, body)
        except ApiException as error:
            if error.status != 409:  # 409: it exists from an earlier spawn
                raise
            await api.replace_namespaced_network_policy(
                body["metadata"]["name"], spawner.namespace, body
            )
        return pod

    return write_user_scheduler_policy


def cubehub_configure_spawner(config: Any, settings: dict[str, Any]) -> None:
    """Add cubehub's pieces to the KubeSpawner config, keeping what the chart already set."""
    spawner = config.KubeSpawner
    spawner.service_account = settings["serviceAccount"]
    spawner.volumes.append(
        {"name": "cubehub-dask-config", "configMap": {"name": settings["daskConfigMap"]}}
    )
    spawner.volume_mounts.extend(
        [
            {
                "name": "cubehub-dask-config",
                "mountPath": settings["daskConfigPath"],
                "subPath": "cubehub.yaml",
                "readOnly": True,
            },
            {
                "name": "cubehub-dask-config",
                "mountPath": settings["podTemplatePath"],
                "subPath": "dask-pod.yaml",
                "readOnly": True,
            },
        ]
    )
    spawner.extra_labels.update({CUBEHUB_USER_LABEL: "{username}", **settings["podLabels"]})
    spawner.environment.update(
        {
            "CUBEHUB_USER": "{username}",
            "CUBEHUB_DASK_POD_TEMPLATE": settings["podTemplatePath"],
            # The notebook pod owns the clusters it starts: they go when the server stops.
            "CUBEHUB_POD_NAME": {"valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            "CUBEHUB_POD_UID": {"valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        }
    )
    spawner.extra_container_config.update({"envFrom": settings["envFrom"]})
    if settings["networkPolicy"]:
        spawner.modify_pod_hook = cubehub_policy_hook(settings)


cubehub_configure_spawner(c, cubehub_load_settings())  # type: ignore[name-defined]  # noqa: F821
