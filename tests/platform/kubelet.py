"""What the kubelet gives a container, rebuilt offline from rendered manifests.

:func:`materialize` writes the container's volume mounts (ConfigMaps, Secrets, empty dirs)
under a root folder, at ``root + mountPath`` with ``subPath`` and ``items`` honoured, and
returns its environment: ``env`` (values, the downward API's ``fieldRef``, ``secretKeyRef``,
``configMapKeyRef``), ``envFrom``, and the ``<SERVICE>_SERVICE_HOST``/``_PORT`` variables the
kubelet sets for every Service of the namespace.

No mount namespace is needed: absolute paths that point into a mount (in the environment and
in the mounted Python sources that name them) are relocated under the root with
:func:`relocate`, which the caller applies; everything else is byte for byte what the pod gets.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Manifest = dict[str, Any]


@dataclass(frozen=True)
class PodIdentity:
    """What the downward API reports about the pod."""

    name: str
    namespace: str
    uid: str = "00000000-0000-4000-8000-000000000001"
    service_account: str = "default"


def _find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"the pod mounts {kind} {name}, which the render does not contain"
    return found[0]


def _data(source: Manifest) -> dict[str, bytes]:
    """A ConfigMap's or Secret's keys as bytes, as the kubelet writes them to files."""
    out = {k: str(v).encode() for k, v in (source.get("data") or {}).items()}
    if source["kind"] == "Secret":
        out = {k: base64.b64decode(v) for k, v in (source.get("data") or {}).items()}
        out |= {k: str(v).encode() for k, v in (source.get("stringData") or {}).items()}
    return out


def _volume_files(volume: dict[str, Any], manifests: list[Manifest]) -> dict[str, bytes] | None:
    """Relative path -> content of a volume; None for an empty directory."""
    if "configMap" in volume or "secret" in volume:
        kind, ref = (
            ("ConfigMap", volume["configMap"])
            if "configMap" in volume
            else ("Secret", volume["secret"])
        )
        data = _data(_find(manifests, kind, ref.get("name") or ref["secretName"]))
        if "items" in ref:
            return {item["path"]: data[item["key"]] for item in ref["items"]}
        return data
    assert {"emptyDir", "persistentVolumeClaim"} & set(volume), f"unsupported volume {volume}"
    return None


def _field(path: str, pod: PodIdentity) -> str:
    fields = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.serviceAccountName": pod.service_account,
    }
    assert path in fields, f"fieldRef {path} is not emulated"
    return fields[path]


def _service_env(manifests: list[Manifest], namespace: str) -> dict[str, str]:
    """The variables the kubelet sets for each Service (enableServiceLinks, the default)."""
    env = {}
    for index, service in enumerate(m for m in manifests if m["kind"] == "Service"):
        if service["metadata"].get("namespace", namespace) != namespace:
            continue
        prefix = re.sub(r"[^A-Z0-9]", "_", service["metadata"]["name"].upper())
        ports = service["spec"].get("ports", [])
        env[f"{prefix}_SERVICE_HOST"] = f"10.96.0.{index + 10}"
        if ports:
            env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if "name" in port:
                name = re.sub(r"[^A-Z0-9]", "_", port["name"].upper())
                env[f"{prefix}_SERVICE_PORT_{name}"] = str(port["port"])
    return env


def materialize(
    spec: dict[str, Any],
    container_name: str,
    manifests: list[Manifest],
    root: Path,
    pod: PodIdentity,
) -> dict[str, str]:
    """Write the container's mounts under ``root``; return its environment (unrelocated)."""
    (container,) = [
        c
        for c in [*spec.get("initContainers", []), *spec["containers"]]
        if c["name"] == container_name
    ]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        files = _volume_files(volumes[mount["name"]], manifests)
        target = root / mount["mountPath"].lstrip("/")
        if files is None:
            target.mkdir(parents=True, exist_ok=True)
        elif "subPath" in mount:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[mount["subPath"]])
        else:
            for relative, content in files.items():
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                (target / relative).write_bytes(content)
    env = _service_env(manifests, pod.namespace)
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef") or source["secretRef"]
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        env |= {k: v.decode() for k, v in _data(_find(manifests, kind, ref["name"])).items()}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var["valueFrom"]
        if "fieldRef" in ref:
            env[var["name"]] = _field(ref["fieldRef"]["fieldPath"], pod)
        else:
            key_ref = ref.get("secretKeyRef") or ref["configMapKeyRef"]
            kind = "Secret" if "secretKeyRef" in ref else "ConfigMap"
            env[var["name"]] = _data(_find(manifests, kind, key_ref["name"]))[
                key_ref["key"]
            ].decode()
    return env


def mount_roots(spec: dict[str, Any], container_name: str) -> list[str]:
    """The folders the container's mounts live in: a mounted folder, or a mounted file's folder."""
    (container,) = [c for c in spec["containers"] if c["name"] == container_name]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    roots = set()
    for mount in container.get("volumeMounts", []):
        if "persistentVolumeClaim" in volumes[mount["name"]]:
            continue  # data, not configuration: nothing names paths in it
        path = mount["mountPath"].rstrip("/")
        roots.add(path.rsplit("/", 1)[0] if "subPath" in mount else path)
    # A folder inside another root is relocated with it.
    return sorted(r for r in roots if not any(r.startswith(o + "/") for o in roots))


def relocate(text: str, prefixes: list[str], root: Path) -> str:
    """``text`` with every absolute path under one of ``prefixes`` moved under ``root``."""
    pattern = "|".join(re.escape(p) for p in prefixes)
    return re.sub(rf"(?<![\w/.])({pattern})(?=[/\"'\s]|$)", lambda m: f"{root}{m.group(1)}", text)
