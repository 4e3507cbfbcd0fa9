"""Small builders shared by the unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def manifests(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def peer(name: str = "tor1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.bgplb.io/v1",
        "kind": "BGPPeer",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {"localASN": 65001, "peerASN": 65002, "peerIP": "192.0.2.254", **spec},
    }


def gateway(*ips: str, name: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "networking.bgplb.io/v1",
        "kind": "NetworkGatewayGroup",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {"floatingIPs": list(ips)},
    }


def load_balancer(name: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.bgplb.io/v1",
        "kind": "BGPLoadBalancer",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {"localASN": 65001, **spec},
    }
