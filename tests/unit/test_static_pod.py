"""`bgplb static-pod`: the bgpadvertiser manifest for one control-plane node, from a
BGPLoadBalancer's controlPlane settings (the seed's peer-to-node mapping)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CONTROL_PLANE = {
    "vip": "203.0.113.8",
    "port": 443,
    "peers": [
        {"ip": "192.0.2.1", "asn": 65002, "controlPlaneNodes": ["192.0.2.11"]},
        {"ip": "192.0.2.2", "asn": 65002, "controlPlaneNodes": ["192.0.2.13"]},
    ],
}
LB = {
    "apiVersion": "networking.bgplb.io/v1",
    "kind": "BGPLoadBalancer",
    "metadata": {"name": "default", "namespace": "kube-system"},
    "spec": {"localASN": 65001, "controlPlane": CONTROL_PLANE},
}


def static_pod(tmp_path: Path, lb: object, node_ip: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "lb.yaml"
    config.write_text(yaml.safe_dump(lb))
    return subprocess.run(
        [sys.executable, "-m", "bgplb.cli", "static-pod", "--config", str(config),
         "--node-ip", node_ip, "--image", "ghcr.io/bgplb/bgplb-agent:0.1.0"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("node", "peer"), [("192.0.2.11", "192.0.2.1"), ("192.0.2.13", "192.0.2.2")]
)
def test_each_node_peers_with_its_mapped_peers_only(tmp_path: Path, node: str, peer: str) -> None:
    done = static_pod(tmp_path, LB, node)
    assert done.returncode == 0, done.stderr
    pod = yaml.safe_load(done.stdout)
    assert pod["metadata"] == {
        "name": "bgpadvertiser",
        "namespace": "kube-system",
        "labels": {
            "app.kubernetes.io/name": "bgplb",
            "app.kubernetes.io/component": "bgpadvertiser",
        },
    }
    assert pod["spec"]["hostNetwork"] is True
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["bgplb"]
    args = container["args"]
    assert args[0] == "advertise"
    assert [a for a in args if a.startswith("--peer=")] == [f"--peer={peer}:65002"]
    assert f"--local-ip={node}" in args
    assert "--advertise-ip=203.0.113.8" in args
    assert f"--readyz=https://{node}:6443/readyz" in args
    # gRPC on a unix socket in a host directory, never on TCP; root with no capability
    # (to own the socket there), nothing else
    assert "--api=unix:///run/bgplb/control-plane/gobgpd.sock" in args
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["socket"] == "/run/bgplb/control-plane"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize(
    ("lb", "node", "message"),
    [
        (LB, "192.0.2.12", "spec.controlPlane.peers: none is mapped to node 192.0.2.12"),
        (LB, "not-an-ip", "--node-ip: 'not-an-ip' is not an IPv4 address"),
        ({**LB, "spec": {"localASN": 65001}}, "192.0.2.11", "spec.controlPlane: required"),
        # No BGPPeers to take the ASN from here: the field is named.
        ({**LB, "spec": {"controlPlane": CONTROL_PLANE}}, "192.0.2.11", "spec.localASN: required"),
    ],
)
def test_refusals_name_the_field(tmp_path: Path, lb: object, node: str, message: str) -> None:
    done = static_pod(tmp_path, lb, node)
    assert done.returncode != 0
    assert message in done.stderr
    assert done.stdout == ""
