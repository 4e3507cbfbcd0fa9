"""Planner scenarios with hand-checked answers."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface

from bgplb.api import AddressPool, BGPLoadBalancerSpec, BGPPeerSpec, NetworkGatewayGroupSpec
from bgplb.core.plan import plan, replan_services, with_decisions
from bgplb.core.routes import route_names
from bgplb.core.snapshot import Node, Peer, Service, Snapshot

LB = {"lb": "true"}


def node(i: int, labels: dict[str, str] | None = None, ready: bool = True) -> Node:
    return Node(f"node-{i}", (IPv4Interface(f"192.0.2.{i}/24"),), labels or LB, ready)


def snapshot(*services: Service, add_path: bool = True, **kw: object) -> Snapshot:
    lb = BGPLoadBalancerSpec(
        local_asn=65001,
        peer_selector={"dp": "true"},
        address_pools=[AddressPool(name="a", addresses=["203.0.113.10-203.0.113.13"])],
        load_balancer_node_selector=LB,
        add_path=add_path,
    )
    base = Snapshot(
        load_balancer=lb,
        gateway=NetworkGatewayGroupSpec(
            floating_ips=[IPv4Address("192.0.2.100"), IPv4Address("192.0.2.101")]
        ),
        peers=(
            Peer(
                "tor",
                {"dp": "true"},
                BGPPeerSpec(
                    local_asn=65001, peer_asn=65002, peer_ip=IPv4Address("192.0.2.254"), sessions=2
                ),
            ),
        ),
        nodes=(node(1), node(2), node(3)),
        services=services,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_missing_configuration_is_reported() -> None:
    assert plan(replace(snapshot(), load_balancer=None)).problems == (
        "BGPLoadBalancer 'default' not found: nothing to do",
    )
    d = plan(replace(snapshot(), gateway=None))
    assert "NetworkGatewayGroup 'default' not found: no service sessions" in d.problems
    assert d.session_shortfalls["tor"] == "no floating IP is placed on a node"


def test_other_load_balancer_class_is_ignored() -> None:
    d = plan(snapshot(Service("default", "mine"), Service("default", "theirs", "metallb.io/x")))
    assert set(d.vips) == {"default/mine"}
    assert "default/theirs" not in d.service_problems


def test_external_traffic_policy_local() -> None:
    svc = Service("default", "web", local_traffic=True, endpoint_nodes=frozenset({"node-2"}))
    d = plan(snapshot(svc))
    assert d.routes["default/web"].next_hops == (IPv4Address("192.0.2.2"),)
    d = plan(snapshot(replace(svc, endpoint_nodes=frozenset())))
    assert "default/web" not in d.routes
    assert "no ready load-balancer node has a ready endpoint" in d.service_problems["default/web"]
    assert d.vips["default/web"] == IPv4Address("203.0.113.10")  # the VIP is kept


def test_exhaustion_and_conflicts_are_reported() -> None:
    services = [Service("default", f"s{i}") for i in range(5)]
    d = plan(snapshot(*services))
    assert d.service_problems == {"default/s4": "address pool(s) exhausted: a"}
    d = plan(
        snapshot(
            Service("a", "x", requested_ip=IPv4Address("203.0.113.12")),
            Service("b", "y", requested_ip=IPv4Address("203.0.113.12")),
            Service("c", "z", requested_ip=IPv4Address("198.51.100.1")),
        )
    )
    assert d.vips["a/x"] == IPv4Address("203.0.113.12")
    assert d.service_problems["b/y"] == "requested 203.0.113.12 is already used by a/x"
    assert d.service_problems["c/z"] == "requested 198.51.100.1 is not in any address pool"


def test_without_add_path_vips_spread_and_stay() -> None:
    services = [Service("default", f"s{i}") for i in range(4)]
    d = plan(snapshot(*services, add_path=False))
    assert Counter(r.next_hops[0] for r in d.routes.values()) == Counter(
        {IPv4Address("192.0.2.1"): 2, IPv4Address("192.0.2.2"): 1, IPv4Address("192.0.2.3"): 1}
    )
    settled = with_decisions(snapshot(*services, add_path=False), d)
    down = replace(settled, nodes=(node(1), node(2, ready=False), node(3)))
    after = plan(down)
    moved = {k for k in d.routes if d.routes[k].next_hops != after.routes[k].next_hops}
    assert moved == {k for k, r in d.routes.items() if r.next_hops == (IPv4Address("192.0.2.2"),)}


def test_sessions_fall_short_when_floating_ips_share_a_node() -> None:
    s = snapshot(nodes=(node(1), node(2, ready=False)))
    d = plan(s)
    assert set(d.floating_ips.holders.values()) == {"node-1"}
    assert list(d.sessions) == ["tor-node-1"]
    assert d.session_shortfalls["tor"].startswith("1 of 2 sessions")


def test_floating_ip_without_a_subnet_is_unplaced_with_reason() -> None:
    s = snapshot(gateway=NetworkGatewayGroupSpec(floating_ips=[IPv4Address("198.51.100.9")]))
    assert plan(s).floating_ips.unplaced == {
        IPv4Address("198.51.100.9"): "no node has an address in its subnet"
    }


def test_route_names_follow_the_seed_and_stay_unique() -> None:
    assert route_names(["default/load-balancer-example"]) == {
        "default/load-balancer-example": "default-default-load-balancer-example"
    }
    names = route_names(["a-b/c", "a/b-c"])
    assert names["a-b/c"] != names["a/b-c"]
    assert names["a-b/c"] == "default-a-b-c"


def test_one_new_service_gets_the_next_free_vip() -> None:
    s = snapshot(Service("default", "a"), Service("default", "b"))
    before = plan(s)
    after = replace(
        with_decisions(s, before),
        services=(*with_decisions(s, before).services, Service("default", "c")),
    )
    d = replan_services(before, after, {"default/c"})
    assert d.vips["default/c"] == IPv4Address("203.0.113.12")
    assert d.vips["default/a"] == before.vips["default/a"]


def test_nodes_coming_up_one_by_one_end_with_ips_on_distinct_nodes() -> None:
    first = snapshot(nodes=(node(1), node(2, ready=False), node(3, ready=False)))
    d = plan(first)
    assert set(d.floating_ips.holders.values()) == {"node-1"}
    settled = with_decisions(first, d)
    up = replace(settled, nodes=(node(1), node(2), node(3)))
    releasing = plan(up)  # a move between live nodes: node-1 lets go first
    assert set(releasing.floating_ips.releasing.values()) == {"node-1"}
    assert set(releasing.floating_ips.holders.values()) == {"node-1"}
    later = plan(with_decisions(up, releasing))  # these agents report nothing: taken at their word
    assert len(set(later.floating_ips.holders.values())) == 2
    # The peer's two sessions, now on two nodes; the one on node-1 never moved.
    assert "tor-node-1" in later.sessions
    assert len({s.node_name for s in later.sessions.values()}) == 2
    assert "tor" not in later.session_shortfalls


def test_no_ready_endpoint_no_route_but_the_vip_is_kept() -> None:
    """Issue 14 item 7: a Service with EndpointSlices and no ready endpoint anywhere is
    withdrawn (its VIP kept); one whose endpoints are unknown (no slice read) is not;
    the switch off advertises regardless."""
    empty = Service("default", "empty", ready_endpoints=0)
    unknown = Service("default", "unknown")
    serving = Service("default", "serving", ready_endpoints=2)
    d = plan(snapshot(empty, unknown, serving))
    assert set(d.vips) == {"default/empty", "default/unknown", "default/serving"}
    assert set(d.routes) == {"default/unknown", "default/serving"}
    assert "no ready endpoint" in d.service_problems["default/empty"]
    base = snapshot(empty, unknown, serving)
    assert base.load_balancer is not None
    off = base.load_balancer.model_copy(update={"withdraw_without_endpoints": False})
    assert set(plan(replace(base, load_balancer=off)).routes) == set(d.vips)
    # Ready again: advertised again, with the same VIP.
    again = plan(snapshot(replace(empty, ready_endpoints=1), unknown, serving))
    assert again.routes["default/empty"].prefix.network_address == d.vips["default/empty"]
