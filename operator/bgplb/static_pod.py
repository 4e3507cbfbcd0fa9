"""The `bgpadvertiser` static Pod: the control-plane VIP from the first boot.

With kubeadm's `--control-plane-endpoint` set to the VIP, nothing reaches the API
server until the VIP is advertised, so a DaemonSet is too late: the kubelet starts
static Pods from /etc/kubernetes/manifests without the API server. This Pod runs
`bgplb advertise --readyz` (its own gobgpd) with this node's control-plane peers from
a BGPLoadBalancer's `spec.controlPlane`: the sessions start from the node's address,
and the VIP is advertised only while the local kube-apiserver answers /readyz.

It is the only owner of a node's control-plane sessions; the node agent reads their
state from its gobgpd (gRPC on the unix socket CONTROL_PLANE_SOCKET, in a host
directory only the two mount) to report the BGPSessions, and never changes them.
docs/DESIGN.md says why.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml

from bgplb.gobgpd import CONTROL_PLANE_SOCKET, UNIX
from bgplb.preflight import control_plane_pairs

NAME = "bgpadvertiser"
NAMESPACE = "kube-system"
CONTROL_PLANE_API_PORT = 50052
"""Where the process-level lab (no kubelet, no host directories) serves it instead."""
HEALTH_PORT = 8082


def pod(
    node_ip: ipaddress.IPv4Address,
    *,
    local_asn: int,
    peers: list[tuple[str, int]],
    vip: str,
    image: str,
    apiserver_port: int = 6443,
    readyz: str | None = None,
) -> dict[str, Any]:
    """The Pod; `readyz` replaces the local API server's /readyz URL (a lab whose API
    server runs elsewhere)."""
    readyz = readyz or f"https://{node_ip}:{apiserver_port}/readyz"
    args = [
        "advertise",
        f"--local-ip={node_ip}",
        f"--local-asn={local_asn}",
        *(f"--peer={ip}:{asn}" for ip, asn in peers),
        f"--advertise-ip={vip}",
        f"--readyz={readyz}",
        f"--api={UNIX}{CONTROL_PLANE_SOCKET}",
        f"--health-port={HEALTH_PORT}",
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/name": "bgplb",
                "app.kubernetes.io/component": NAME,
            },
        },
        "spec": {
            # Sessions start from the node's own address.
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "terminationGracePeriodSeconds": 10,
            "containers": [
                {
                    "name": NAME,
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["bgplb"],
                    "args": args,
                    # Ready once every session is Established.
                    "readinessProbe": {
                        "httpGet": {"host": "127.0.0.1", "port": HEALTH_PORT, "path": "/healthz"},
                        "periodSeconds": 2,
                    },
                    "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}},
                    "securityContext": {
                        # Outgoing BGP sessions need no capability. UID 0 only to own
                        # gobgpd's socket in the root-owned host directory, so the
                        # agent (UID 0) may connect and nobody else may.
                        "runAsUser": 0,
                        "runAsNonRoot": False,
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "volumeMounts": [
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "socket", "mountPath": str(CONTROL_PLANE_SOCKET.parent)},
                    ],
                }
            ],
            "volumes": [
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                {
                    "name": "socket",
                    "hostPath": {
                        "path": str(CONTROL_PLANE_SOCKET.parent),
                        "type": "DirectoryOrCreate",
                    },
                },
            ],
        },
    }


def for_load_balancer(
    lb: Any,
    node_ip: str,
    image: str,
    *,
    apiserver_port: int = 6443,
    readyz: str | None = None,
    where: str = "BGPLoadBalancer",
) -> dict[str, Any]:
    """This node's Pod from a BGPLoadBalancer object (spec.controlPlane); SystemExit
    naming the field when it cannot serve this node."""
    try:
        ip = ipaddress.IPv4Address(node_ip)
    except ValueError:
        raise SystemExit(f"--node-ip: {node_ip!r} is not an IPv4 address") from None
    advertiser, vip = control_plane_pairs(lb, ip, where)
    if not vip:
        raise SystemExit(f"{where}: spec.controlPlane.vip: required for the static Pod")
    peers = [(str(p.peer_ip), p.peer_asn) for p in advertiser.peers]
    return pod(
        ip,
        local_asn=advertiser.local_asn,
        peers=peers,
        vip=vip,
        image=image,
        apiserver_port=apiserver_port,
        readyz=readyz,
    )


def manifest(config: Path, node_ip: str, image: str, apiserver_port: int = 6443) -> str:
    """The manifest file's text for this node, from a BGPLoadBalancer manifest."""
    try:
        doc = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SystemExit(f"{config}: cannot read: {e}") from None
    spec = for_load_balancer(doc, node_ip, image, apiserver_port=apiserver_port, where=str(config))
    return yaml.safe_dump(spec, sort_keys=False)
