"""Shared VIPs: Services with the same sharing key and no overlapping port share one
address; anything else is refused with the reason."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

import pytest

from bgplb.core.admission import review
from bgplb.core.plan import plan, replan_services, with_decisions
from bgplb.core.snapshot import Service
from bgplb_lab.manifests import service
from tests.unit.test_admission import ctx, request
from tests.unit.test_plan import node, snapshot

VIP = IPv4Address("203.0.113.12")


def svc(name: str, *ports: int, key: str | None = "k", **kw: Any) -> Service:
    return Service(
        "default",
        name,
        sharing_key=key,
        ports=frozenset(("TCP", p) for p in ports),
        **kw,
    )


def test_a_requested_vip_is_shared_by_the_same_key_on_other_ports() -> None:
    d = plan(snapshot(svc("web", 80, requested_ip=VIP), svc("dns", 53, requested_ip=VIP)))
    assert d.vips == {"default/web": VIP, "default/dns": VIP}
    assert d.service_problems == {}
    # One prefix, the same next hops for both.
    assert d.routes["default/web"].next_hops == d.routes["default/dns"].next_hops


@pytest.mark.parametrize(
    ("other", "reason"),
    [
        (svc("zz", 80, requested_ip=VIP), "default/web on the same port(s): TCP/80"),
        (
            svc("zz", 53, key="j", requested_ip=VIP),
            "default/web (sharing key 'j' here, 'k' there)",
        ),
        (
            svc("zz", 53, key=None, requested_ip=VIP),
            "default/web (sharing key none here, 'k' there)",
        ),
        (
            svc("zz", 53, requested_ip=VIP, local_traffic=True),
            "default/web, whose externalTrafficPolicy is Cluster and this Service's is not",
        ),
    ],
)
def test_a_vip_is_not_shared_against_the_rule(other: Service, reason: str) -> None:
    d = plan(snapshot(svc("web", 80, requested_ip=VIP), other))
    assert d.vips["default/web"] == VIP
    assert other.key not in d.vips
    assert d.service_problems[other.key].startswith(f"requested {VIP} is already used by {reason}")


def test_local_services_share_only_with_the_same_pods() -> None:
    same = {"app": "x"}.items()
    a = svc("a", 80, requested_ip=VIP, local_traffic=True, selector=tuple(same))
    b = svc("b", 81, requested_ip=VIP, local_traffic=True, selector=tuple(same))
    c = svc("c", 82, requested_ip=VIP, local_traffic=True, selector=(("app", "y"),))
    eps = frozenset({"node-1"})
    d = plan(snapshot(*(replace(s, endpoint_nodes=eps) for s in (a, b, c))))
    assert d.vips["default/a"] == d.vips["default/b"] == VIP
    assert "selects other Pods" in d.service_problems["default/c"]


def test_without_a_request_a_key_joins_its_address_where_it_fits() -> None:
    d = plan(snapshot(svc("a", 80), svc("b", 443), svc("c", 80), Service("default", "d")))
    assert d.vips["default/a"] == d.vips["default/b"]  # same key, other port: joined
    assert d.vips["default/c"] != d.vips["default/a"]  # port 80 again: an address of its own
    assert len(set(d.vips.values())) == 3
    assert d.service_problems == {}


def test_without_add_path_a_shared_vip_has_one_next_hop() -> None:
    a, b = svc("a", 80, requested_ip=VIP), svc("b", 81, requested_ip=VIP)
    s = snapshot(a, b, add_path=False)
    # Their routes disagree now (each had its own next hop): the first one's wins.
    s = replace(
        s,
        route_next_hops={
            "default/a": (node(2).ip,),
            "default/b": (node(3).ip,),
        },
    )
    d = plan(s)
    assert d.routes["default/a"].next_hops == d.routes["default/b"].next_hops == (node(2).ip,)


def test_sharing_is_stable_and_incremental_planning_agrees() -> None:
    s = snapshot(svc("a", 80), svc("b", 443))
    first = plan(s)
    again = plan(with_decisions(s, first))
    assert again.vips == first.vips
    # A third Service of the key: re-planned alone, it joins as a full plan would.
    later = replace(
        with_decisions(s, first), services=(*with_decisions(s, first).services, svc("c", 8080))
    )
    assert replan_services(first, later, {"default/c"}).vips == plan(later).vips


def shared(name: str, port: int, key: str | None, ip: str) -> dict[str, Any]:
    obj = service(name, loadBalancerIP=ip, ports=[{"port": port}])
    if key is not None:
        obj["metadata"]["annotations"] = {"networking.bgplb.io/sharing-key": key}
    return obj


def test_the_webhook_applies_the_same_rule() -> None:
    c = ctx(services=[shared("a", 80, "k", "203.0.113.2")])
    assert review(request(shared("b", 53, "k", "203.0.113.2")), c, mutate=False).allowed
    same_port = review(request(shared("b", 80, "k", "203.0.113.2")), c, mutate=False)
    assert [str(e) for e in same_port.errors] == [
        "spec.loadBalancerIP: 203.0.113.2 is already the VIP of Service default/a on the "
        "same port(s): TCP/80"
    ]
    other_key = review(request(shared("b", 53, None, "203.0.113.2")), c, mutate=False)
    assert "sharing key none here, 'k' there" in other_key.errors[0].reason
    bad = review(request(shared("b", 53, "-nope-", "203.0.113.3")), c, mutate=False)
    assert bad.errors[0].field == "metadata.annotations[networking.bgplb.io/sharing-key]"
    assert "is not a sharing key" in bad.errors[0].reason
