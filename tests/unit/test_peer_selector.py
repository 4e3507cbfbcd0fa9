"""Which peers announce which pools (a pool's advertisement.peerSelector): planned by
the controller, turned into gobgpd's export policy by the agent."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

from bgplb.agent.desired import denied, node_desired
from bgplb.agent.speaker.gobgp import denied_from, policies_request
from bgplb.api import BGPAdvertisedRouteSpec, BGPPeerSpec, ServiceRef
from bgplb.api.bgploadbalancer import AddressPool, Advertisement
from bgplb.core.objects import route_spec
from bgplb.core.plan import plan, replan_services, with_decisions
from bgplb.core.snapshot import Peer, Service, Snapshot
from tests.unit.test_agent_logic import NODE_IP, session
from tests.unit.test_plan import snapshot

A = IPv4Address
FRR, BIRD = A("192.0.2.1"), A("192.0.2.2")


def two_peers(selector: dict[str, str] | None, *services: Service) -> Snapshot:
    s = snapshot(*services)
    lb = s.load_balancer
    assert lb is not None
    pools = [
        AddressPool(
            name="a",
            addresses=["203.0.113.10-203.0.113.13"],
            advertisement=Advertisement(peer_selector=selector),
        )
    ]
    peers = tuple(
        Peer(
            name,
            {"dp": "true", "vendor": name},
            BGPPeerSpec(local_asn=65001, peer_asn=65002, peer_ip=ip, sessions=2),
        )
        for name, ip in (("frr", FRR), ("bird", BIRD))
    )
    return replace(s, load_balancer=lb.model_copy(update={"address_pools": pools}), peers=peers)


def test_a_pools_peer_selector_names_the_peers_on_its_routes() -> None:
    d = plan(two_peers({"vendor": "frr"}, Service("default", "web")))
    assert d.routes["default/web"].peers == ("frr",)
    assert route_spec(d.routes["default/web"]).peers == ["frr"]
    assert "default/web" not in d.service_problems
    everyone = plan(two_peers(None, Service("default", "web")))
    assert everyone.routes["default/web"].peers is None
    assert route_spec(everyone.routes["default/web"]).peers is None


def test_a_selector_matching_no_peer_is_said_on_the_service() -> None:
    d = plan(two_peers({"vendor": "cisco"}, Service("default", "web")))
    assert d.routes["default/web"].peers == ()
    assert "selects no data-plane BGPPeer" in d.service_problems["default/web"]


def test_replanning_a_service_keeps_its_pools_peers() -> None:
    s = two_peers({"vendor": "frr"}, Service("default", "web"))
    first = plan(s)
    later = replace(
        with_decisions(s, first),
        services=(*with_decisions(s, first).services, Service("default", "api")),
    )
    again = replan_services(first, later, {"default/api"})
    assert again.routes == plan(later).routes
    assert again.routes["default/api"].peers == ("frr",)


def route(name: str, prefix: str, peers: list[str] | None) -> BGPAdvertisedRouteSpec:
    return BGPAdvertisedRouteSpec(
        prefix=IPv4Network(prefix),
        next_hops=[NODE_IP],
        service=ServiceRef(namespace="default", name=name),
        peers=peers,
    )


def test_the_agent_denies_each_prefix_to_the_neighbours_of_peers_not_named() -> None:
    sessions = {
        "frr-n1": session(peer="frr", peer_ip=FRR),
        "bird-n1": session(peer="bird", peer_ip=BIRD),
    }
    routes = [
        route("only-frr", "203.0.113.10/32", ["frr"]),
        route("all", "203.0.113.11/32", None),
        route("nobody", "203.0.113.12/32", []),
        # Two Services on one VIP, each pool naming one peer: both peers get it.
        route("shared-a", "203.0.113.13/32", ["frr"]),
        route("shared-b", "203.0.113.13/32", ["bird"]),
    ]
    assert denied(routes, sessions) == {
        IPv4Network("203.0.113.10/32"): frozenset({BIRD}),
        IPv4Network("203.0.113.12/32"): frozenset({FRR, BIRD}),
    }
    d = node_desired("n1", NODE_IP, sessions=sessions, routes=routes, floating_ips=[], passwords={})
    assert d.service.denied == denied(routes, sessions)


def test_the_policy_written_to_gobgpd_reads_back_the_same() -> None:
    """An agent restart re-reads it: nothing is set again, no soft reset is sent."""
    wanted = {
        IPv4Network("203.0.113.10/32"): frozenset({BIRD}),
        IPv4Network("203.0.113.11/32"): frozenset({BIRD}),
        IPv4Network("203.0.113.12/31"): frozenset({FRR, BIRD}),
    }
    request = policies_request(wanted)
    assert len(request.policies[0].statements) == 2  # one per distinct neighbour set
    assert denied_from(list(request.defined_sets)) == wanted
    cleared = policies_request({})
    assert (list(cleared.defined_sets), list(cleared.policies)) == ([], [])
    assert list(cleared.assignments[0].policies) == []  # the global export emptied
