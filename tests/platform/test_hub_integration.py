"""cubehub's hub integration next to a deployment's own hub settings, and across upgrades."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import Any

from chart_helpers import Manifest, Render, merge, named
from hubenv import hub_python
from test_hub_boot import boot_hub

#: What a deployment adds to the hub: its own pod hook (hub.extraConfig, which z2jh runs after
#: cubehub's file) and its own envFrom (hub.config, loaded before it).
DEPLOYER = {
    "jupyterhub": {
        "hub": {
            "config": {
                "KubeSpawner": {
                    "extra_container_config": {"envFrom": [{"secretRef": {"name": "team-tokens"}}]}
                }
            },
            "extraConfig": {
                "team-hook": textwrap.dedent(
                    """
                    def team_hook(spawner, pod):
                        pod.metadata.labels["example.org/team"] = "eo"
                        return pod

                    c.KubeSpawner.modify_pod_hook = team_hook
                    """
                )
            },
        }
    }
}


def test_a_deployments_own_hook_and_env_from_are_kept(
    render: Render, lint_values: dict[str, Any], tmp_path: Path
) -> None:
    booted = boot_hub(render(merge(lint_values, DEPLOYER)), tmp_path)
    for manifest in booted["users"]["alice"]["pods"].values():
        assert manifest["metadata"]["labels"]["example.org/team"] == "eo"  # their hook ran
        assert manifest["spec"]["serviceAccountName"] == "cubehub-user"  # and cubehub's pieces
        assert manifest["metadata"]["labels"]["cubehub.io/user"] == "alice"
        (container,) = manifest["spec"]["containers"]
        assert container["envFrom"] == [
            {"secretRef": {"name": "team-tokens"}},
            {"configMapRef": {"name": "cubehub-env"}},
            {"secretRef": {"name": "cubehub-object-store"}},
        ]
    assert booted["users"]["alice"]["objects"], "the user namespace is still prepared"


WATCH = """
import asyncio, os, signal, sys
from pathlib import Path
from traitlets.config import Config

directory = Path(sys.argv[1])
stopped = []
signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))

async def main():
    config = Config()
    config.JupyterHub.hub_connect_url = "http://hub:8081"  # as z2jh's file sets it first
    namespace = {"c": config, "__name__": "jupyterhub_config"}
    exec(compile((directory / "cubehub_spawner.py").read_text(), "cubehub_spawner.py", "exec"), namespace)
    digest = namespace["cubehub_digest"](directory)
    watch = asyncio.create_task(namespace["cubehub_watch"](directory, digest, 0.05))
    await asyncio.sleep(0.3)
    print("before change:", bool(stopped))
    (directory / "hub-settings.json").write_text((directory / "hub-settings.json").read_text() + " ")
    await asyncio.wait_for(watch, 5)
    print("after change:", bool(stopped))

asyncio.run(main())
"""


def test_the_hub_restarts_when_its_configmap_changes(
    lint_manifests: list[Manifest], tmp_path: Path
) -> None:
    """The hub mounts the cubehub-hub ConfigMap as a folder (which the kubelet keeps current,
    unlike subPath mounts), watches it, and stops itself cleanly when an upgrade changes it;
    Kubernetes then restarts it with the new files."""
    spec = named(lint_manifests, "Deployment", "hub")["spec"]["template"]["spec"]
    (hub,) = spec["containers"]
    watched = [
        m for m in hub["volumeMounts"] if m["mountPath"].rstrip("/") == "/usr/local/etc/cubehub"
    ]
    assert [m.get("subPath") for m in watched] == [None]
    data = named(lint_manifests, "ConfigMap", "cubehub-hub")["data"]
    for name, content in data.items():
        (tmp_path / name).write_text(content)
    source = (tmp_path / "cubehub_spawner.py").read_text()
    (tmp_path / "cubehub_spawner.py").write_text(
        source.replace('Path("/usr/local/etc/cubehub")', f'Path("{tmp_path}")')
    )
    result = subprocess.run(
        [str(hub_python()), "-c", WATCH, str(tmp_path)],
        env={"POD_NAMESPACE": "cubehub", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:2] == ["before change: False", "after change: True"], (
        result.stdout
    )
