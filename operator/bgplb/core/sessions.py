"""BGP sessions: service sessions from floating IPs, control-plane sessions from node IPs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address

from bgplb.api import (
    CONTROL_PLANE_ROLE,
    BGPLoadBalancerSpec,
    BGPPeerSpec,
    BGPSessionSpec,
)
from bgplb.api.bgppeer import SessionTransport
from bgplb.core.snapshot import Node, Peer

_TRANSPORT_FIELDS = tuple(SessionTransport.model_fields)


@dataclass(frozen=True)
class SessionPlan:
    sessions: Mapping[str, BGPSessionSpec]
    """Session name → spec."""
    shortfalls: Mapping[str, str]
    """Peer name → why it has fewer sessions than it asked for."""


def implicit_peer_name(ip: IPv4Address) -> str:
    """Name of a control-plane peer when it also serves the data plane."""
    return "lb-" + str(ip).replace(".", "-")


def data_plane_peers(
    lb: BGPLoadBalancerSpec, local_asn: int, peers: tuple[Peer, ...], floating_ip_count: int
) -> list[tuple[str, BGPPeerSpec]]:
    """The seed's rule: the peers the selector picks, else the control-plane peers."""
    if lb.peer_selector is not None:
        selector = lb.peer_selector.items()
        return sorted(
            ((p.name, p.spec) for p in peers if selector <= p.labels.items()),
            key=lambda pair: pair[0],
        )
    control_plane = lb.control_plane.peers if lb.control_plane else []
    # A control-plane peer used for services peers with every floating IP, as in
    # the seed's first two examples.
    return [
        (
            implicit_peer_name(cp.ip),
            BGPPeerSpec(
                local_asn=local_asn,
                peer_asn=cp.asn,
                peer_ip=cp.ip,
                sessions=max(1, min(floating_ip_count, 64)),
                bfd=cp.bfd,
            ),
        )
        for cp in control_plane
    ]


def _spread(peer: str, ip: IPv4Address) -> bytes:
    # Rendezvous hashing: each peer ranks the floating IPs differently, so peers
    # with fewer sessions than there are floating IPs do not all pile onto the same ones.
    return hashlib.blake2b(f"{peer}|{ip}".encode(), digest_size=8).digest()


def plan_service_sessions(
    peers: list[tuple[str, BGPPeerSpec]],
    holders: Mapping[IPv4Address, str],
    current: Mapping[str, frozenset[IPv4Address]],
    add_path: bool,
) -> SessionPlan:
    """`sessions` sessions per peer, each from its own floating IP on its own node.

    One speaker per node keys its neighbours by peer address, so a node can carry
    only one session to a given peer: a peer gets at most as many sessions as there
    are distinct nodes holding floating IPs.
    """
    sessions: dict[str, BGPSessionSpec] = {}
    shortfalls: dict[str, str] = {}
    taken: set[tuple[str, IPv4Address]] = set()  # (node, peer IP)
    for name, spec in peers:
        in_use = current.get(name, frozenset())
        ranked = sorted(holders, key=lambda ip: (ip not in in_use, _spread(name, ip)))
        nodes_used: set[str] = set()
        for ip in ranked:
            if len(nodes_used) == spec.sessions:
                break
            node = holders[ip]
            if node in nodes_used or (node, spec.peer_ip) in taken:
                continue
            nodes_used.add(node)
            taken.add((node, spec.peer_ip))
            sessions[f"{name}-{node}"] = BGPSessionSpec(
                floating_ip=ip,
                local_asn=spec.local_asn,
                local_ip=ip,
                node_name=node,
                peer_asn=spec.peer_asn,
                peer_ip=spec.peer_ip,
                peer=name,
                type="Service",
                add_path=add_path,
                **{f: getattr(spec, f) for f in _TRANSPORT_FIELDS},
            )
        if len(nodes_used) < spec.sessions:
            distinct = len(set(holders.values()))
            shortfalls[name] = (
                "no floating IP is placed on a node"
                if not holders
                else f"{len(nodes_used)} of {spec.sessions} sessions: floating IPs are held "
                f"by {distinct} distinct node(s), and a node carries one session per peer"
            )
    return SessionPlan(sessions=sessions, shortfalls=shortfalls)


def control_plane_nodes(nodes: tuple[Node, ...]) -> list[Node]:
    return sorted((n for n in nodes if CONTROL_PLANE_ROLE in n.labels), key=lambda n: n.name)


def plan_control_plane_sessions(
    lb: BGPLoadBalancerSpec, local_asn: int, nodes: tuple[Node, ...]
) -> SessionPlan:
    """From each control-plane node's own IP to its peers, named `<peerIP>-<node>`.

    Not gated on the node's Lease: these sessions must keep the control-plane VIP
    reachable exactly when the API server (and so the Lease) may not be.
    """
    sessions: dict[str, BGPSessionSpec] = {}
    shortfalls: dict[str, str] = {}
    if lb.control_plane is None:
        return SessionPlan(sessions, shortfalls)
    cp_nodes = control_plane_nodes(nodes)
    cp_ips = {n.ip for n in cp_nodes}
    for i, peer in enumerate(lb.control_plane.peers):
        wanted = set(peer.control_plane_nodes)
        if stray := sorted(wanted - cp_ips):
            shortfalls[str(peer.ip)] = (
                f"controlPlane.peers[{i}].controlPlaneNodes: "
                f"{', '.join(map(str, stray))} is not the IP of a control-plane node"
            )
        for node in cp_nodes:
            if wanted and node.ip not in wanted:
                continue
            sessions[f"{peer.ip}-{node.name}"] = BGPSessionSpec(
                local_asn=local_asn,
                local_ip=node.ip,
                node_name=node.name,
                peer_asn=peer.asn,
                peer_ip=peer.ip,
                type="ControlPlane",
                add_path=False,  # one path: this node, for the control-plane VIP
                bfd=peer.bfd,
            )
    return SessionPlan(sessions, shortfalls)
