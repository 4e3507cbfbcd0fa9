"""The seed's three configurations load, validate and plan as the seed describes."""

from __future__ import annotations

from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from bgplb.api import BFD, CONTROL_PLANE_ROLE, BGPLoadBalancer, BGPPeer, NetworkGatewayGroup
from bgplb.core.plan import DesiredState, plan
from bgplb.core.snapshot import Node, Peer, Service, Snapshot
from bgplb.core.validate import Config, load, validate
from tests.unit.helpers import EXAMPLES, manifests

CP = {CONTROL_PLANE_ROLE: ""}


def _plan(path: Path, nodes: tuple[Node, ...]) -> DesiredState:
    objs = [load(d) for d in manifests(path)]
    lb = next(o for o in objs if isinstance(o, BGPLoadBalancer))
    ngg = next(o for o in objs if isinstance(o, NetworkGatewayGroup))
    peers = tuple(
        Peer(o.metadata.name, o.metadata.labels, o.spec) for o in objs if isinstance(o, BGPPeer)
    )
    return plan(
        Snapshot(lb.spec, ngg.spec, peers, nodes, (Service("default", "load-balancer-example"),))
    )


def _node(name: str, ip: str, labels: dict[str, str] | None = None) -> Node:
    return Node(name, (IPv4Interface(ip),), labels or {})


SEED_CP_NODES = (
    _node("node-01", "10.0.1.10/24", CP),
    _node("node-02", "10.0.1.11/24", CP),
    _node("node-03", "10.0.2.10/24", CP),
)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    docs = manifests(path)
    assert docs
    objs = [load(d) for d in docs]
    config = Config(
        load_balancer=next((o for o in objs if isinstance(o, BGPLoadBalancer)), None),
        gateway=next((o for o in objs if isinstance(o, NetworkGatewayGroup)), None),
        peers=[o for o in objs if isinstance(o, BGPPeer)],
    )
    for doc in docs:
        assert validate(doc, config)[1] == []
        assert doc["apiVersion"] == "networking.bgplb.io/v1"


def test_same_peers_for_all_nodes() -> None:
    d = _plan(EXAMPLES / "1-same-peers-for-all-nodes.yaml", SEED_CP_NODES)
    cp = sorted(k for k, v in d.sessions.items() if v.type == "ControlPlane")
    assert cp == [
        f"{peer}-{node}"
        for peer in ("10.8.0.10", "10.8.0.11")
        for node in ("node-01", "node-02", "node-03")
    ]
    # No BGPLoadBalancer selector: the control-plane peers take the service sessions,
    # one from each floating IP.
    service = {k: v for k, v in d.sessions.items() if v.type == "Service"}
    assert {str(v.floating_ip) for v in service.values()} == {"10.0.1.100", "10.0.2.100"}
    assert {str(v.peer_ip) for v in service.values()} == {"10.8.0.10", "10.8.0.11"}
    assert len(service) == 4
    assert d.floating_ips.holders[next(iter(d.floating_ips.holders))] in {"node-01", "node-02"}
    assert str(d.vips["default/load-balancer-example"]) == "10.0.0.1"
    assert [str(h) for h in d.routes["default/load-balancer-example"].next_hops] == [
        "10.0.1.10",
        "10.0.1.11",
        "10.0.2.10",
    ]


def test_control_plane_nodes_mapped_to_peers() -> None:
    d = _plan(EXAMPLES / "2-control-plane-nodes-to-specific-peers.yaml", SEED_CP_NODES)
    cp = sorted(k for k, v in d.sessions.items() if v.type == "ControlPlane")
    assert cp == ["10.0.1.254-node-01", "10.0.1.254-node-02", "10.0.2.254-node-03"]
    assert d.control_plane_route is not None
    assert str(d.control_plane_route.prefix) == "10.0.0.8/32"


def test_separate_control_plane_and_data_plane_peers() -> None:
    nodes = (
        _node("node-01", "10.0.1.10/24", CP),
        _node("node-02", "10.0.1.11/24", CP),
        _node("node-03", "10.0.2.11/24", CP),
        _node("node-04", "10.0.3.20/24"),
        _node("node-05", "10.0.3.21/24"),
    )
    d = _plan(EXAMPLES / "3-separate-control-plane-and-data-plane-peers.yaml", nodes)
    service = {k: v for k, v in d.sessions.items() if v.type == "Service"}
    # bgppeer1 asks for 2 sessions: one from each floating IP, on two different nodes,
    # named <peer>-<node> as in the seed's `kubectl get bgpsessions`.
    assert sorted(service) == ["bgppeer1-node-04", "bgppeer1-node-05"]
    assert {str(v.local_ip) for v in service.values()} == {"10.0.3.100", "10.0.3.101"}
    assert all(str(v.peer_ip) == "10.0.3.254" for v in service.values())
    cp = sorted(k for k, v in d.sessions.items() if v.type == "ControlPlane")
    assert cp == ["10.0.1.254-node-01", "10.0.1.254-node-02", "10.0.2.254-node-03"]
    # Next hops stay the load-balancer nodes (control plane by default), whichever
    # nodes hold the floating IPs.
    hops = {str(h) for h in d.routes["default/load-balancer-example"].next_hops}
    assert hops == {"10.0.1.10", "10.0.1.11", "10.0.2.11"}


def test_bfd_on_a_control_plane_peer_reaches_its_sessions_and_the_service_ones() -> None:
    """Example 1 with BFD on its first control-plane peer: the control-plane sessions
    to it carry BFD, and so do the service sessions it takes (it serves the data
    plane too); the other peer's sessions carry none."""
    objs = [load(d) for d in manifests(EXAMPLES / "1-same-peers-for-all-nodes.yaml")]
    lb = next(o for o in objs if isinstance(o, BGPLoadBalancer))
    ngg = next(o for o in objs if isinstance(o, NetworkGatewayGroup))
    assert lb.spec.control_plane is not None
    first, second = lb.spec.control_plane.peers
    bfd = BFD(detect_multiplier=5)
    peers = [first.model_copy(update={"bfd": bfd}), second]
    spec = lb.spec.model_copy(
        update={"control_plane": lb.spec.control_plane.model_copy(update={"peers": peers})}
    )
    d = plan(Snapshot(spec, ngg.spec, (), SEED_CP_NODES, ()))
    with_bfd = {k for k, v in d.sessions.items() if v.bfd == bfd}
    assert with_bfd
    assert all(d.sessions[k].peer_ip == first.ip for k in with_bfd)
    assert {d.sessions[k].type for k in with_bfd} == {"ControlPlane", "Service"}
    assert all(v.bfd is None for v in d.sessions.values() if v.peer_ip == second.ip)
