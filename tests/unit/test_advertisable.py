"""The agent's last check before the wire: only /32s inside the address pools."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from bgplb.agent.desired import advertisable
from bgplb.agent.source import inputs_from, pool_ranges
from bgplb.api import BGPAdvertisedRouteSpec
from bgplb.api.bgpadvertisedroute import ServiceRef


def route(prefix: str) -> BGPAdvertisedRouteSpec:
    return BGPAdvertisedRouteSpec(
        prefix=IPv4Network(prefix),
        next_hops=[IPv4Address("192.0.2.11")],
        service=ServiceRef(namespace="default", name="web"),
    )


LB = {
    "kind": "BGPLoadBalancer",
    "metadata": {"name": "default"},
    "spec": {
        "addressPools": [
            {"name": "a", "addresses": ["203.0.113.10-203.0.113.20"]},
            # host bits set: the model refuses it, the guard still reads what was meant
            {"name": "b", "addresses": ["198.51.100.1/28", "not-an-address"]},
        ]
    },
}


def test_pools_are_read_leniently() -> None:
    a = int(IPv4Address("203.0.113.10")), int(IPv4Address("203.0.113.20"))
    b = int(IPv4Address("198.51.100.0")), int(IPv4Address("198.51.100.15"))
    assert pool_ranges(LB) == tuple(sorted([a, b]))
    assert inputs_from([LB]).pools == pool_ranges(LB)
    other = {**LB, "metadata": {"name": "other"}}
    assert inputs_from([other]).pools is None  # only the default one counts


def test_only_slash32s_in_a_pool_pass() -> None:
    pools = pool_ranges(LB)
    routes = [route(p) for p in ("203.0.113.10/32", "198.51.100.15/32", "198.51.100.16/32",
                                 "0.0.0.0/0", "203.0.113.0/24")]  # fmt: skip
    kept, refused = advertisable(routes, pools)
    assert [str(r.prefix) for r in kept] == ["203.0.113.10/32", "198.51.100.15/32"]
    assert refused == {
        "198.51.100.16/32": "198.51.100.16/32: not in any address pool of the BGPLoadBalancer",
        "0.0.0.0/0": "0.0.0.0/0: only /32 VIPs are advertised",
        "203.0.113.0/24": "203.0.113.0/24: only /32 VIPs are advertised",
    }
    assert advertisable(routes, ())[0] == []  # no pool: nothing
    assert len(advertisable(routes, None)[0]) == 3  # not known (a file without one): /32s
