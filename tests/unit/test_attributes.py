"""Advertisement attributes: parsing, the pool → route → BGPAdvertisedRoute → path
chain, shared VIPs, and bad annotations (refused by the webhook, left out by the
controller without withdrawing anything)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

import pytest
from pydantic import ValidationError

from bgplb.agent.desired import advertisable, service_paths
from bgplb.agent.speaker.gobgp import path_config, path_message
from bgplb.agent.speaker.model import PathConfig
from bgplb.api import BGPAdvertisedRouteSpec
from bgplb.api.bgploadbalancer import AddressPool, Advertisement
from bgplb.api.communities import CommunityError, parse_community, parse_large_community
from bgplb.core.admission import review
from bgplb.core.attributes import Attributes, from_annotations, of_route
from bgplb.core.objects import route_spec
from bgplb.core.plan import plan, replan_services, with_decisions
from bgplb.core.snapshot import Service, Snapshot
from bgplb.core.validate import validate
from bgplb_lab.manifests import load_balancer, service
from tests.unit.test_admission import ctx, request
from tests.unit.test_plan import snapshot

VIP = IPv4Address("203.0.113.12")
COMMUNITIES = "networking.bgplb.io/communities"
LARGE = "networking.bgplb.io/large-communities"


def test_communities_parse_as_routers_write_them() -> None:
    assert parse_community("65000:100") == (65000 << 16) | 100
    assert parse_community("no-export") == 0xFFFFFF01
    assert parse_community("graceful-shutdown") == 0xFFFF0000
    assert parse_large_community("4200000000:1:2") == (4200000000, 1, 2)
    for bad, why in [
        ("65536:1", "at most 65535"),
        ("65000", "not a community"),
        ("no-such", "not a community"),
    ]:
        with pytest.raises(CommunityError, match=why):
            parse_community(bad)
    with pytest.raises(CommunityError, match="at most 4294967295"):
        parse_large_community("4294967296:1:2")


def test_the_api_refuses_a_bad_community_naming_the_field() -> None:
    with pytest.raises(ValidationError) as e:
        AddressPool.model_validate(
            {
                "name": "a",
                "addresses": ["203.0.113.0/28"],
                "advertisement": {"communities": ["65000:1", "70000:1"]},
            }
        )
    assert "advertisement.communities.1" in str(e.value)
    assert "at most 65535" in str(e.value)
    with pytest.raises(ValidationError, match=r"asPathPrepend|as_path_prepend"):
        Advertisement.model_validate({"asPathPrepend": 11})


def test_combining_adds_communities_and_keeps_the_worse_prepend_and_med() -> None:
    a = Attributes.parse(["65000:2", "65000:1"], ["1:2:3"], 1, 10)
    b = Attributes.parse(["65000:1", "no-export"], [], 3, None)
    both = a.with_(b)
    assert both.community_texts() == ["65000:1", "65000:2", "65535:65281"]
    assert both.large_community_texts() == ["1:2:3"]
    assert (both.as_path_prepend, both.med) == (3, 10)
    assert both == b.with_(a)  # order does not matter


def pooled(*services: Service) -> object:
    s = snapshot(*services)
    lb = s.load_balancer
    assert lb is not None
    pool = lb.address_pools[0].model_copy(
        update={
            "advertisement": Advertisement(
                communities=["65000:100"],
                large_communities=["65000:1:1"],
                as_path_prepend=2,
                med=50,
            )
        }
    )
    return replace(s, load_balancer=lb.model_copy(update={"address_pools": [pool]}))


def test_a_pools_attributes_reach_its_routes_and_their_objects() -> None:
    d = plan(pooled(Service("default", "web")))  # type: ignore[arg-type]
    route = d.routes["default/web"]
    assert route.attributes == Attributes.parse(["65000:100"], ["65000:1:1"], 2, 50)
    spec = route_spec(route)
    assert (spec.communities, spec.large_communities, spec.as_path_prepend, spec.metric) == (
        ["65000:100"],
        ["65000:1:1"],
        2,
        50,
    )
    # A route without attributes carries none of the fields (objects stay as they were).
    plain = route_spec(plan(snapshot(Service("default", "web"))).routes["default/web"])
    dumped = plain.model_dump(by_alias=True, exclude_none=True)
    assert set(dumped) == {"prefix", "nextHops", "service"}


def own(name: str, communities: tuple[str, ...], **kw: object) -> Service:
    return Service(
        "default",
        name,
        attributes=Attributes.parse(communities),
        sharing_key="k",
        **kw,  # type: ignore[arg-type]
    )


def test_services_sharing_a_vip_send_one_path_with_all_their_communities() -> None:
    s = pooled(
        own("web", ("65000:1",), requested_ip=VIP, ports=frozenset({("TCP", 80)})),
        own("dns", ("65000:2",), requested_ip=VIP, ports=frozenset({("UDP", 53)})),
    )
    d = plan(s)  # type: ignore[arg-type]
    web, dns = d.routes["default/web"], d.routes["default/dns"]
    assert web.attributes == dns.attributes
    assert web.attributes.community_texts() == ["65000:1", "65000:2", "65000:100"]
    # Replanning only the changed one still updates the other's route (one path).
    before = with_decisions(s, d)  # type: ignore[arg-type]
    changed = replace(
        before,
        services=tuple(
            replace(x, attributes=Attributes.parse(["65000:3"])) if x.name == "dns" else x
            for x in before.services
        ),
    )
    again = replan_services(d, changed, {"default/dns"})
    assert again.routes == plan(changed).routes
    assert "65000:3" in again.routes["default/web"].attributes.community_texts()


def test_the_agent_merges_routes_of_one_vip_into_one_path_each_next_hop() -> None:
    prefix = IPv4Network("203.0.113.12/32")
    hops = [IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")]
    routes = [
        BGPAdvertisedRouteSpec.model_validate(
            {
                "prefix": str(prefix),
                "nextHops": [str(h) for h in hops],
                "service": {"namespace": "default", "name": name},
                "communities": [community],
                "metric": med,
            }
        )
        for name, community, med in [("web", "65000:1", 5), ("dns", "65000:2", 7)]
    ]
    paths = service_paths(routes, add_path=True)
    assert len(paths) == 2
    for p in paths:
        assert p.attributes.community_texts() == ["65000:1", "65000:2"]
        assert p.attributes.med == 7


def test_a_path_with_attributes_reads_back_from_its_gobgp_message() -> None:
    """What the driver adopts from a running gobgpd equals what it sent, so an agent
    restart re-sends nothing."""
    path = PathConfig(
        IPv4Network("203.0.113.12/32"),
        IPv4Address("192.0.2.11"),
        7,
        Attributes.parse(["65000:1", "no-export"], ["65000:2:3"], 2, 40),
    )
    assert path_config(path_message(path, 64512)) == path
    plain = PathConfig(IPv4Network("203.0.113.12/32"), IPv4Address("192.0.2.11"))
    assert path_config(path_message(plain, 64512)) == plain


def test_a_bad_annotation_is_refused_by_the_webhook_naming_it() -> None:
    obj = service("web")
    obj["metadata"]["annotations"] = {COMMUNITIES: "65000:1, 99999:1", LARGE: "1:2"}
    d = review(request(obj), ctx(), mutate=False)
    assert not d.allowed
    assert [(e.field, e.reason) for e in d.errors] == [
        (
            f"metadata.annotations[{COMMUNITIES}]",
            "'99999:1': both halves of a community are at most 65535",
        ),
        (f"metadata.annotations[{LARGE}]", "'1:2' is not a large community 'ASN:value:value'"),
    ]
    obj["metadata"]["annotations"] = {COMMUNITIES: "65000:1,no-export"}
    assert review(request(obj), ctx(), mutate=False).allowed


def test_the_controller_advertises_without_a_bad_entry_and_says_why() -> None:
    """The webhook was down when it was written: the VIP stays advertised with the
    good communities; the Service's Event names the entry left out."""
    attributes, errors = from_annotations({COMMUNITIES: "65000:1,65000:x"})
    assert attributes.community_texts() == ["65000:1"]
    svc = Service(
        "default",
        "web",
        attributes=attributes,
        attribute_errors=tuple(f"{f}: {w}" for f, w in errors),
    )
    d = plan(snapshot(svc))
    assert d.routes["default/web"].attributes.community_texts() == ["65000:1"]
    assert "65000:x" in d.service_problems["default/web"]
    assert COMMUNITIES in d.service_problems["default/web"]


def test_a_route_object_entry_that_does_not_parse_is_left_out_not_the_route() -> None:
    assert of_route(["65000:1", "bogus"], ["1:2:3", "1:2"], None, None) == Attributes.parse(
        ["65000:1"], ["1:2:3"]
    )


def aggregated(length: int, entries: list[str], *services: Service) -> Snapshot:
    s = snapshot(*services)
    lb = s.load_balancer
    assert lb is not None
    pool = AddressPool(
        name="a", addresses=entries, advertisement=Advertisement(aggregation_length=length)
    )
    return replace(s, load_balancer=lb.model_copy(update={"address_pools": [pool]}))


def test_an_aggregate_must_stay_inside_its_pool() -> None:
    def errors(length: int, entries: list[str]) -> list[str]:
        lb = load_balancer(
            addressPools=[
                {"name": "a", "addresses": entries, "advertisement": {"aggregationLength": length}}
            ]
        )
        return [str(e) for e in validate(lb)[1]]

    assert errors(30, ["203.0.113.8/29"]) == []
    assert errors(31, ["203.0.113.12-203.0.113.13"]) == []
    assert errors(29, ["203.0.113.10-203.0.113.20"]) == [
        "spec.addressPools[0].advertisement.aggregationLength: 29: "
        "the pool's 203.0.113.10-203.0.113.20 is not made of whole /29 blocks, so an "
        "aggregate would cover addresses outside the pool"
    ]


def test_vips_of_one_block_are_one_aggregate_with_every_next_hop() -> None:
    """Two Cluster Services in one /31 are announced as the /31; a Local one stays a
    /32 (only its own nodes may receive its traffic)."""
    s = aggregated(
        31,
        ["203.0.113.12-203.0.113.13", "203.0.113.20/32"],
        Service("default", "a", requested_ip=IPv4Address("203.0.113.12")),
        Service("default", "b", requested_ip=IPv4Address("203.0.113.13")),
        Service(
            "default",
            "local",
            requested_ip=IPv4Address("203.0.113.20"),
            local_traffic=True,
            endpoint_nodes=frozenset({"node-1"}),
        ),
    )
    d = plan(s)
    assert d.routes["default/a"].aggregation_length == 31
    assert d.routes["default/local"].aggregation_length == 32
    specs = [route_spec(r) for r in d.routes.values()]
    assert specs[0].aggregation_length in (31, None)
    paths = service_paths(specs, add_path=True)
    prefixes = {p.prefix for p in paths}
    assert prefixes == {IPv4Network("203.0.113.12/31"), IPv4Network("203.0.113.20/32")}
    assert len([p for p in paths if p.prefix.prefixlen == 31]) == 3  # one per node
    # Without ADD-PATH: one path per aggregate, whatever its VIPs' single next hops.
    assert len([p for p in service_paths(specs, add_path=False) if p.prefix.prefixlen == 31]) == 1


def test_the_agent_refuses_an_aggregate_reaching_outside_the_pools() -> None:
    route = BGPAdvertisedRouteSpec.model_validate(
        {
            "prefix": "203.0.113.12/32",
            "nextHops": ["192.0.2.1"],
            "aggregationLength": 8,
            "service": {"namespace": "default", "name": "a"},
        }
    )
    pools = ((int(IPv4Address("203.0.113.0")), int(IPv4Address("203.0.113.255"))),)
    kept, refused = advertisable([route], pools)
    assert kept == []
    assert refused == {
        "203.0.113.12/32": "203.0.113.12/32: its aggregate 203.0.0.0/8 reaches outside the "
        "address pools"
    }
