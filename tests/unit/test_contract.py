"""The API's contract (api/contract.py): its parsers and its questions of a Service."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

from bgplb.api.contract import (
    LOAD_BALANCER_CLASS,
    format_addresses,
    is_ours,
    lease_name,
    lease_node,
    parse_addresses,
    vips_of,
)


def test_lease_names_round_trip_and_other_leases_are_not_nodes() -> None:
    assert lease_node(lease_name("node-01")) == "node-01"
    assert lease_node("kube-scheduler") is None


def test_addresses_round_trip_and_unreadable_parts_are_skipped() -> None:
    addresses = [IPv4Interface("192.0.2.11/24"), IPv4Interface("198.51.100.5/24")]
    assert parse_addresses(format_addresses(addresses)) == addresses
    assert parse_addresses("192.0.2.11/24, nonsense,,") == [IPv4Interface("192.0.2.11/24")]
    assert parse_addresses(None) == []


def service(**spec: object) -> dict[str, object]:
    return {"spec": {"type": "LoadBalancer", **spec}}


def test_ours_is_a_load_balancer_of_our_class_or_none() -> None:
    assert is_ours(service())
    assert is_ours(service(loadBalancerClass=LOAD_BALANCER_CLASS))
    assert not is_ours(service(loadBalancerClass="other.io/lb"))
    assert not is_ours({"spec": {"type": "ClusterIP"}})


def test_vips_are_the_ingress_and_the_requested_address() -> None:
    svc = {
        **service(loadBalancerIP="203.0.113.2"),
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.1"}, {"hostname": "x"}]}},
    }
    assert vips_of(svc) == {IPv4Address("203.0.113.1"), IPv4Address("203.0.113.2")}
    assert vips_of(service(loadBalancerIP="not-an-ip")) == set()
