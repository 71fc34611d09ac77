"""What the chart reads from the cluster at install: the namespace's Pod Security label and the
API server's endpoints.

`helm install` answers ``lookup`` from the cluster; offline it returns nothing (as under
`helm template`). So the chart's helpers take the lookup's result as an argument, and these
tests render them, unchanged (cubehub's own _helpers.tpl), in a small chart that passes what
a cluster would return.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_helpers import CHART, documents
from k8s_rules import Endpoint, connection_allowed, pod

CHECK = """{{- include "cubehub.checkRestrictedNamespace" (dict "name" "cubehub" "namespace" .Values.namespace) }}
"""
EGRESS = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: eo-alice}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    {{- include "cubehub.apiServerEgress" (dict "rule" .Values.rule "slices" .Values.slices) | nindent 4 }}
"""
#: What `kubectl get endpointslices -n default -o json` shows on a kind cluster (trimmed).
SLICES = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["172.18.0.2"], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "other-x1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "other"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.0.9"]}],
            "ports": [{"port": 80}],
        },
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chart = tmp_path_factory.mktemp("harness") / "harness"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: harness\nversion: 0.1.0\n")
    shutil.copy(CHART / "templates" / "_helpers.tpl", chart / "templates" / "_helpers.tpl")
    (chart / "templates" / "check.yaml").write_text(CHECK)
    (chart / "templates" / "egress.yaml").write_text(EGRESS)
    return chart


def _render(harness: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    base = {"namespace": {}, "rule": {"peers": [], "ports": [443]}, "slices": {}}
    with helm.Chart.load(harness) as chart:
        return documents(chart.render({**base, **values}, name="eo", namespace="cubehub"))


def _namespace(labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "cubehub", "labels": labels},
    }


def test_an_unlabelled_namespace_fails_the_install(harness: Path) -> None:
    with pytest.raises(helm.HelmRenderError) as raised:
        _render(harness, {"namespace": _namespace({"kubernetes.io/metadata.name": "cubehub"})})
    message = str(raised.value)
    assert "namespace cubehub does not enforce the restricted Pod Security Standard" in message
    assert (
        "kubectl label namespace cubehub pod-security.kubernetes.io/enforce=restricted" in message
    )
    with pytest.raises(helm.HelmRenderError):
        _render(
            harness, {"namespace": _namespace({"pod-security.kubernetes.io/enforce": "baseline"})}
        )


def test_a_restricted_namespace_passes_and_helm_template_skips(harness: Path) -> None:
    _render(
        harness, {"namespace": _namespace({"pod-security.kubernetes.io/enforce": "restricted"})}
    )
    _render(harness, {"namespace": {}})  # what lookup returns without a cluster


def _egress(harness: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    (policy,) = _render(harness, values)
    egress: list[dict[str, Any]] = policy["spec"]["egress"] or []
    return egress


def test_the_api_server_is_found_from_its_endpoint_slice(harness: Path) -> None:
    egress = _egress(harness, {"slices": SLICES})
    assert egress == [
        {
            "to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}],
            "ports": [{"port": 6443, "protocol": "TCP"}],
        }
    ]
    policy = {"metadata": {"name": "api", "namespace": "eo-alice"},
              "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": egress}}  # fmt: skip
    notebook = pod("10.244.1.10", "eo-alice", {"component": "singleuser-server"})
    assert connection_allowed([policy], notebook, Endpoint(ip="172.18.0.2"), 6443)
    assert not connection_allowed([policy], notebook, Endpoint(ip="10.244.0.9"), 80)


def test_explicit_peers_override_discovery_and_nothing_known_opens_nothing(harness: Path) -> None:
    rule = {"peers": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [443]}
    assert _egress(harness, {"slices": SLICES, "rule": rule}) == [
        {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"port": 443, "protocol": "TCP"}]}
    ]
    assert _egress(harness, {}) == []


def test_the_chart_passes_the_lookups_to_these_helpers() -> None:
    """The templates give the helpers what lookup returns at install."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert '(lookup "v1" "Namespace" "" .Release.Namespace)' in helpers
    assert '(lookup "discovery.k8s.io/v1" "EndpointSlice" "default" "")' in helpers
    assert (
        yaml.safe_load((CHART / "values.yaml").read_text())["podSecurity"][
            "requireRestrictedNamespace"
        ]
        is True
    )
