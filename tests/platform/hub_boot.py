"""Loads the hub's configuration as JupyterHub does and builds each user's notebook pod offline.

Run by the hub environment's interpreter (hubenv.py), never imported by the test process:

    python hub_boot.py CONFIG_FILE USERS...

CONFIG_FILE is the hub container's jupyterhub_config.py (z2jh's own, as mounted); the process
environment is the hub container's. JupyterHub loads the file with its own loader, then for each
user and each profile the configured spawner class (KubeSpawner, as KubeSpawner's own tests do,
with ``_mock=True``: no API server) loads the profile and builds the pod manifest. Prints one
JSON document: the spawner class, hub settings, and per user the namespace, the objects cubehub
puts in it and the pod of every profile.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from jupyterhub.app import JupyterHub
from jupyterhub.objects import Hub, Server
from jupyterhub.utils import maybe_future
from kubernetes_asyncio.client import ApiClient


class User:
    """What a spawner reads of its user (KubeSpawner's tests use the same fields)."""

    def __init__(self, name: str, uid: int) -> None:
        self.name = name
        self.id = uid
        self.server = Server()
        self.escaped_name = name
        self.url = f"/user/{name}/"


async def _boot(config_file: str, users: list[str]) -> dict[str, Any]:
    app = JupyterHub()
    app.load_config_file(config_file)
    spawner_class = app.spawner_class
    hub = Hub(base_url="/hub/")
    hub.connect_url = app.hub_connect_url
    serialize = ApiClient().sanitize_for_serialization
    out: dict[str, Any] = {
        "spawner_class": f"{spawner_class.__module__}.{spawner_class.__qualname__}",
        "hub_connect_url": app.hub_connect_url,
        "users": {},
    }
    for uid, name in enumerate(users, 1):
        spawner = spawner_class(config=app.config, user=User(name, uid), hub=hub, _mock=True)
        # Slugs as KubeSpawner derives them for its profile form.
        profiles = spawner._get_initialized_profile_list(spawner.profile_list) or [{"slug": ""}]
        pods = {}
        for profile in profiles:
            spawner = spawner_class(config=app.config, user=User(name, uid), hub=hub, _mock=True)
            spawner.user_options = {"profile": profile["slug"]} if profile["slug"] else {}
            await spawner.load_user_options()
            pod = await spawner.get_pod_manifest()
            if spawner.modify_pod_hook:  # as KubeSpawner's start calls it
                pod = await maybe_future(spawner.modify_pod_hook(spawner, pod))
            pods[profile["slug"]] = serialize(pod)
        objects = getattr(spawner, "cubehub_namespace_objects", None)
        out["users"][name] = {
            "namespace": spawner.namespace,
            "namespace_labels": spawner._expand_all(spawner.user_namespace_labels),
            "objects": objects() if objects else None,
            "pods": pods,
        }
    return out


def main() -> None:
    config_file, *users = sys.argv[1:]
    result = asyncio.run(_boot(config_file, users))
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
