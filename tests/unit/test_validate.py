"""Every validation rule names the field and the reason."""

from __future__ import annotations

from typing import Any

import pytest

from bgplb.api import BGPLoadBalancer, BGPPeer, NetworkGatewayGroup
from bgplb.core.validate import Config, InvalidObjectError, load, validate
from tests.unit.helpers import gateway, load_balancer, peer


def errors(obj: dict[str, Any], config: Config | None = None) -> list[str]:
    return [str(e) for e in validate(obj, config)[1]]


def test_valid_objects_have_no_errors() -> None:
    assert errors(peer()) == []
    assert errors(gateway("192.0.2.10", "192.0.2.11")) == []
    assert (
        errors(load_balancer(addressPools=[{"name": "a", "addresses": ["203.0.113.0/28"]}])) == []
    )


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (peer(peerASN=65001), "spec.peerASN: equals spec.localASN (65001): only eBGP is supported"),
        (
            load_balancer(controlPlane={"peers": [{"ip": "192.0.2.1", "asn": 65001}]}),
            "spec.controlPlane.peers[0].asn: equals spec.localASN (65001): only eBGP is supported",
        ),
        (peer(peerASN=0), "spec.peerASN: Input should be greater than or equal to 1"),
        (
            peer(localASN=4294967296),
            "spec.localASN: Input should be less than or equal to 4294967295",
        ),
        (peer(peerIP="2001:db8::1"), "spec.peerIP: IPv6 is not supported yet"),
        (gateway("192.0.2.1", "2001:db8::1"), "spec.floatingIPs[1]: IPv6 is not supported yet"),
        (
            load_balancer(addressPools=[{"name": "v6", "addresses": ["2001:db8::/64"]}]),
            "spec.addressPools[0].addresses[0]: IPv6 is not supported yet",
        ),
        (peer(peerIP="192.0.2.300"), "spec.peerIP: '192.0.2.300' is not an IPv4 address"),
        (
            gateway("192.0.2.1", "192.0.2.2", "192.0.2.1"),
            "spec.floatingIPs[2]: duplicate of spec.floatingIPs[0] (192.0.2.1)",
        ),
        (gateway(), "spec.floatingIPs: List should have at least 1 item after validation, not 0"),
        (
            gateway("192.0.2.1", name="mine"),
            "metadata.name: must be 'default': there is one NetworkGatewayGroup per cluster",
        ),
        (
            load_balancer(name="lb"),
            "metadata.name: must be 'default': there is one BGPLoadBalancer per cluster",
        ),
        (peer(sessions=0), "spec.sessions: Input should be greater than or equal to 1"),
        (
            peer(keepaliveTimeSeconds=40, holdTimeSeconds=90),
            "spec.keepaliveTimeSeconds: 40s is more than a third of holdTimeSeconds (90s)",
        ),
        (peer(colour="blue"), "spec.colour: unknown field"),
        ({**peer(), "spec": {"localASN": 65001}}, "spec.peerASN: required"),
        (
            load_balancer(
                addressPools=[
                    {"name": "a", "addresses": ["203.0.113.0/28"]},
                    {"name": "b", "addresses": ["203.0.113.10-203.0.113.20"]},
                ]
            ),
            "spec.addressPools[1].addresses[0]: overlaps spec.addressPools[0].addresses[0]",
        ),
        (
            load_balancer(addressPools=[{"name": "a", "addresses": ["203.0.113.9-203.0.113.1"]}]),
            "spec.addressPools[0].addresses[0]: "
            "range '203.0.113.9-203.0.113.1' ends before it starts",
        ),
        (
            load_balancer(addressPools=[{"name": "a", "addresses": ["203.0.113.5/28"]}]),
            "spec.addressPools[0].addresses[0]: '203.0.113.5/28' is not a range 'first-last' or an "
            "IPv4 CIDR: 203.0.113.5/28 has host bits set",
        ),
        (
            load_balancer(
                addressPools=[
                    {"name": "a", "addresses": ["203.0.113.0/30"]},
                    {"name": "a", "addresses": ["203.0.113.8/30"]},
                ]
            ),
            "spec.addressPools[1]: name repeats spec.addressPools[0] (a)",
        ),
        (
            load_balancer(
                controlPlane={
                    "peers": [{"ip": "192.0.2.1", "asn": 65002}, {"ip": "192.0.2.1", "asn": 65003}]
                }
            ),
            "spec.controlPlane.peers[1]: same peer IP as spec.controlPlane.peers[0] (192.0.2.1)",
        ),
        (
            load_balancer(
                controlPlane={"vip": "203.0.113.2"},
                addressPools=[{"name": "a", "addresses": ["203.0.113.0/30"]}],
            ),
            "spec.controlPlane.vip: 203.0.113.2 is inside address pool "
            "spec.addressPools[0].addresses[0]",
        ),
        (
            peer(name="192.0.2.254"),
            "metadata.name: must not be an IP address: control-plane "
            "sessions are named <peerIP>-<node>",
        ),
        (
            {"kind": "Gateway"},
            "kind: unknown kind 'Gateway'; expected one of ['BGPAdvertisedRoute', "
            "'BGPLoadBalancer', 'BGPPeer', 'BGPSession', 'NetworkGatewayGroup']",
        ),
    ],
)
def test_rule(obj: dict[str, Any], expected: str) -> None:
    assert expected in errors(obj)


def _config(*objs: dict[str, Any]) -> Config:
    loaded = [load(o) for o in objs]
    return Config(
        load_balancer=next((o for o in loaded if isinstance(o, BGPLoadBalancer)), None),
        gateway=next((o for o in loaded if isinstance(o, NetworkGatewayGroup)), None),
        peers=[o for o in loaded if isinstance(o, BGPPeer)],
    )


def test_floating_ips_must_be_outside_pools_both_ways() -> None:
    lb = load_balancer(addressPools=[{"name": "a", "addresses": ["192.0.2.8/29"]}])
    ngg = gateway("192.0.2.1", "192.0.2.9")
    assert errors(ngg, _config(lb)) == [
        "spec.floatingIPs[1]: 192.0.2.9 is inside address pool "
        "spec.addressPools[0].addresses[0] of the BGPLoadBalancer"
    ]
    assert errors(lb, _config(ngg)) == [
        "spec.addressPools[0].addresses[0]: contains floating IP 192.0.2.9 of the "
        "NetworkGatewayGroup"
    ]


def test_floating_ip_must_not_be_the_control_plane_vip() -> None:
    lb = load_balancer(controlPlane={"vip": "192.0.2.1"})
    assert errors(gateway("192.0.2.1"), _config(lb)) == [
        "spec.floatingIPs[0]: 192.0.2.1 is the control-plane VIP"
    ]


def test_duplicate_peer_across_objects() -> None:
    config = _config(peer("tor1"))
    assert errors(peer("tor2"), config) == [
        "spec.peerIP: 192.0.2.254 is already the peer of BGPPeer tor1"
    ]
    # Updating the same object is not a duplicate of itself.
    assert errors(peer("tor1", sessions=2), config) == []


def test_load_raises_with_every_error() -> None:
    with pytest.raises(InvalidObjectError) as info:
        load(peer(peerASN=65001, sessions=0))
    assert [e.field for e in info.value.errors] == ["spec.sessions"]
    with pytest.raises(InvalidObjectError) as info:
        load(peer(peerASN=65001))
    assert [e.field for e in info.value.errors] == ["spec.peerASN"]
