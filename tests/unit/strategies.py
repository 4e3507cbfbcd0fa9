"""Hypothesis strategies for planner snapshots in the RFC 5737 ranges."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from hypothesis import strategies as st

from bgplb.api import (
    CONTROL_PLANE_ROLE,
    AddressPool,
    BGPLoadBalancerSpec,
    BGPPeerSpec,
    ControlPlane,
    ControlPlanePeer,
    NetworkGatewayGroupSpec,
)
from bgplb.api.bgploadbalancer import parse_pool_entry
from bgplb.api.contract import LOAD_BALANCER_CLASS
from bgplb.core.snapshot import Node, Peer, Service, Snapshot

SUBNETS = [IPv4Network("192.0.2.0/26"), IPv4Network("192.0.2.64/26"), IPv4Network("192.0.2.128/26")]
POOLS = [
    AddressPool(name="a", addresses=["203.0.113.0/29"]),
    AddressPool(name="b", addresses=["203.0.113.16-203.0.113.20"], avoid_buggy_ips=True),
    AddressPool(name="m", addresses=["203.0.113.64/30"], manual_assign=True),
]
LB_ROLE = "example.com/lb"
NAMESPACES = ["default", "team-a", "team"]


def host(subnet: IPv4Network) -> st.SearchStrategy[IPv4Address]:
    return st.integers(1, subnet.num_addresses - 2).map(lambda i: subnet[i])


@st.composite
def nodes(draw: st.DrawFn) -> tuple[Node, ...]:
    count = draw(st.integers(1, 8))
    ips = draw(
        st.lists(
            st.sampled_from(SUBNETS).flatmap(host), min_size=count, max_size=count, unique=True
        )
    )
    out = []
    for i, ip in enumerate(ips):
        labels: dict[str, str] = {}
        if draw(st.booleans()):
            labels[CONTROL_PLANE_ROLE] = ""
        if draw(st.booleans()):
            labels[LB_ROLE] = "true"
        net = next(s for s in SUBNETS if ip in s)
        out.append(
            Node(
                name=f"node-{i:02d}",
                addresses=(IPv4Interface(f"{ip}/{net.prefixlen}"),),
                labels=labels,
                ready=draw(st.booleans() | st.just(True)),
            )
        )
    return tuple(out)


POOL_ADDRESSES = sorted(
    {
        IPv4Address(a)
        for p in POOLS
        for first, last in map(parse_pool_entry, p.addresses)
        for a in range(first, last + 1)
    }
)
ADDRESSES = st.one_of(
    st.sampled_from(POOL_ADDRESSES),
    st.sampled_from(POOL_ADDRESSES),
    host(IPv4Network("203.0.113.0/25")),
    st.just(IPv4Address("198.51.100.1")),
)


@st.composite
def services(draw: st.DrawFn, node_names: list[str]) -> tuple[Service, ...]:
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(["web", "db", "a-web", "x"])),
            unique=True,
            max_size=12,
        )
    )
    out = []
    for ns, name in keys:
        out.append(
            Service(
                namespace=ns,
                name=name,
                load_balancer_class=draw(
                    st.sampled_from([None, None, None, LOAD_BALANCER_CLASS, "other.io/lb"])
                ),
                requested_ip=draw(st.none() | st.none() | ADDRESSES),
                pool=draw(st.sampled_from([None, None, None, "a", "b", "m", "missing"])),
                current_ip=draw(st.none() | ADDRESSES),
                local_traffic=draw(st.booleans()),
                endpoint_nodes=frozenset(
                    draw(st.lists(st.sampled_from(node_names), max_size=3)) if node_names else []
                ),
            )
        )
    return tuple(out)


@st.composite
def snapshots(draw: st.DrawFn, add_path: bool | None = None) -> Snapshot:
    node_list = draw(nodes())
    node_ips = {n.ip for n in node_list}
    floating = draw(
        st.lists(
            st.sampled_from([*SUBNETS, IPv4Network("198.51.100.0/28")])
            .flatmap(host)
            .filter(lambda ip: ip not in node_ips),
            max_size=6,
            unique=True,
        )
    )
    cp_nodes = [n for n in node_list if CONTROL_PLANE_ROLE in n.labels]
    cp_peers = [
        ControlPlanePeer(
            ip=IPv4Address(f"192.0.2.{250 + i}"),
            asn=65002,
            control_plane_nodes=draw(
                st.lists(st.sampled_from([n.ip for n in cp_nodes]), unique=True, max_size=2)
                if cp_nodes
                else st.just([])
            ),
        )
        for i in range(draw(st.integers(0, 2)))
    ]
    peer_count = draw(st.integers(0, 3))
    peers = tuple(
        Peer(
            name=f"peer{i}",
            labels={"role": draw(st.sampled_from(["dp", "other"]))},
            spec=BGPPeerSpec(
                local_asn=65001,
                peer_asn=65010 + i,
                peer_ip=IPv4Address(f"192.0.2.{240 + i}"),
                sessions=draw(st.integers(1, 4)),
            ),
        )
        for i in range(peer_count)
    )
    lb = BGPLoadBalancerSpec(
        local_asn=65001,
        peer_selector=draw(st.sampled_from([None, {"role": "dp"}])),
        address_pools=POOLS,
        load_balancer_node_selector=draw(st.sampled_from([{LB_ROLE: "true"}, {}])),
        control_plane=ControlPlane(vip=IPv4Address("198.51.100.200"), peers=cp_peers),
        add_path=draw(st.booleans()) if add_path is None else add_path,
    )
    svc = draw(services([n.name for n in node_list]))
    holders = {}
    for ip in floating:
        if draw(st.booleans()):
            holders[ip] = draw(st.sampled_from([n.name for n in node_list]))
    return Snapshot(
        load_balancer=lb,
        gateway=NetworkGatewayGroupSpec(floating_ips=floating) if floating else None,
        peers=peers,
        nodes=node_list,
        services=svc,
        floating_ip_holders=holders,
    )
