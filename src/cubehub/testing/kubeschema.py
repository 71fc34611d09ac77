"""Validate cubehub's Kubernetes manifests offline, as the API server would.

Two sources of truth, both pinned by the lock file:

* the dask-kubernetes operator's CRDs, as shipped in its wheel (the resolved copies in its
  Helm chart): :func:`validate_dask_resource` checks a ``DaskCluster`` or ``DaskJob`` against
  the CRD's ``openAPIV3Schema`` and, like the API server, prunes fields the schema does not
  declare — a pruned field is reported as an error, since the server would drop it silently;
* the Kubernetes OpenAPI schemas of ``kubernetes-validate`` (strict: no unknown fields):
  :func:`validate_embedded` checks the object metadata, every pod spec and service spec
  inside, wrapped in a Pod / Service / ConfigMap.

Needs the ``test`` extra (``kubernetes-validate``, ``jsonschema``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.resources import files
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

#: The Kubernetes version whose OpenAPI schemas are used (the oldest the platform supports).
KUBERNETES_VERSION = "1.31"
_CRD_FILES = {
    "DaskCluster": "daskcluster.yaml",
    "DaskJob": "daskjob.yaml",
    "DaskWorkerGroup": "daskworkergroup.yaml",
}
_CRD_DIR = "operator/deployment/helm/dask-kubernetes-operator/crds"


@cache
def crd_schema(kind: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of the ``v1`` version of the operator's CRD for ``kind``."""
    text = files("dask_kubernetes").joinpath(f"{_CRD_DIR}/{_CRD_FILES[kind]}").read_text()
    crd = yaml.safe_load(text)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def prune(value: Any, schema: Mapping[str, Any], path: str = "") -> tuple[Any, list[str]]:
    """``value`` with the fields ``schema`` does not declare removed, and their paths.

    Follows the API server's pruning of structural schemas: an object keeps the keys listed
    in ``properties``; ``additionalProperties`` (maps) and ``x-kubernetes-preserve-unknown-fields``
    keep everything.
    """
    dropped: list[str] = []
    if isinstance(value, Mapping) and schema.get("type", "object") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return copy.deepcopy(value), dropped
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            if props is not None and key in props:
                out[key], more = prune(item, props[key], f"{path}.{key}")
            elif isinstance(extra, Mapping):
                out[key], more = prune(item, extra, f"{path}.{key}")
            elif props is None and extra is None:
                out[key], more = copy.deepcopy(item), []
            else:
                dropped.append(f"{path}.{key}")
                continue
            dropped += more
        return out, dropped
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        out_list = []
        for k, item in enumerate(value):
            pruned, more = prune(item, schema["items"], f"{path}[{k}]")
            out_list.append(pruned)
            dropped += more
        return out_list, dropped
    return copy.deepcopy(value), dropped


def validate_dask_resource(
    resource: Mapping[str, Any], schema: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Check ``resource`` against its operator CRD; the object as the server would store it.

    Raises :class:`jsonschema.ValidationError` for a schema violation and ``ValueError``
    naming the fields the server would drop. ``schema`` replaces the shipped CRD's (to
    model an older operator).
    """
    schema = schema if schema is not None else crd_schema(resource["kind"])
    body = {k: v for k, v in resource.items() if k not in ("apiVersion", "kind", "metadata")}
    jsonschema.validate(body, schema, cls=jsonschema.Draft7Validator)
    stored, dropped = prune(body, schema)
    if dropped:
        raise ValueError(f"the API server would drop {', '.join(dropped)} from {resource['kind']}")
    return {
        **{
            k: copy.deepcopy(resource[k])
            for k in ("apiVersion", "kind", "metadata")
            if k in resource
        },
        **stored,
    }


def pod_specs(resource: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(path, PodSpec) of every pod spec inside a DaskCluster or DaskJob."""
    spec = resource["spec"]
    if resource["kind"] == "DaskJob":
        yield "spec.job.spec", spec["job"]["spec"]
        spec = spec["cluster"]["spec"]
        prefix = "spec.cluster.spec"
    else:
        prefix = "spec"
    yield f"{prefix}.scheduler.spec", spec["scheduler"]["spec"]
    yield f"{prefix}.worker.spec", spec["worker"]["spec"]


def validate_embedded(resource: Mapping[str, Any], version: str = KUBERNETES_VERSION) -> None:
    """Check the metadata, pod specs and service spec of a Dask resource, strictly.

    Raises :class:`kubernetes_validate.ValidationError` naming the failing part.
    """
    meta = resource["metadata"]
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(meta)}, version, strict=True
    )
    for _, pod_spec in pod_specs(resource):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": meta["name"]},
            "spec": dict(pod_spec),
        }
        kubernetes_validate.validate(pod, version, strict=True)
    cluster = (
        resource["spec"]["cluster"]["spec"] if resource["kind"] == "DaskJob" else resource["spec"]
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": meta["name"]},
        "spec": cluster["scheduler"]["service"],
    }
    kubernetes_validate.validate(service, version, strict=True)
