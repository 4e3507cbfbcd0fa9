"""Manifests of our kinds (and Services) for the lab, tests and benchmarks."""

from __future__ import annotations

from typing import Any

from bgplb.api import API_VERSION

NAMESPACE = "kube-system"


def _object(
    kind: str, name: str, spec: dict[str, Any], labels: dict[str, str] | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


def peer(name: str = "tor1", labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    spec = {"localASN": 65001, "peerASN": 65002, "peerIP": "192.0.2.254", **spec}
    return _object("BGPPeer", name, spec, labels)


def gateway(*ips: str, name: str = "default") -> dict[str, Any]:
    return _object("NetworkGatewayGroup", name, {"floatingIPs": list(ips)}, None)


def load_balancer(name: str = "default", **spec: Any) -> dict[str, Any]:
    return _object("BGPLoadBalancer", name, {"localASN": 65001, **spec}, None)


def service(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], **spec},
    }
