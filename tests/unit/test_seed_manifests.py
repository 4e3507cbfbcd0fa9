"""The seed's third example as written (issue 14, item 1): its BGPLoadBalancer has
only `peerSelector`; the cluster's ASN comes from the BGPPeers it selects."""

from __future__ import annotations

import copy
from typing import Any

from bgplb.api import BGPLoadBalancer, BGPPeer
from bgplb.controller.snapshot import ClusterState, snapshot_from
from bgplb.core.local_asn import local_asn_of
from bgplb.core.plan import plan
from bgplb.core.snapshot import Peer
from bgplb.core.validate import Config, load, validate

API = "networking.bgplb.io/v1"
NS = "kube-system"
LABEL = {"cluster.baremetal.gke.io/default-peer": "true"}

# The seed's objects with apiVersion and namespace changed (its NetworkGatewayGroup
# also lacks the `metadata:` line, added here).
SEED_LB: dict[str, Any] = {
    "apiVersion": API,
    "kind": "BGPLoadBalancer",
    "metadata": {"name": "default", "namespace": NS},
    "spec": {"peerSelector": LABEL},
}
SEED_PEER: dict[str, Any] = {
    "apiVersion": API,
    "kind": "BGPPeer",
    "metadata": {"name": "bgppeer1", "namespace": NS, "labels": LABEL},
    "spec": {"localASN": 65001, "peerASN": 65002, "peerIP": "10.0.3.254", "sessions": 2},
}
SEED_NGG: dict[str, Any] = {
    "apiVersion": API,
    "kind": "NetworkGatewayGroup",
    "metadata": {"name": "default", "namespace": NS},
    "spec": {"floatingIPs": ["10.0.3.100", "10.0.3.101"]},
}


def other_peer(asn: int, name: str = "bgppeer2") -> dict[str, Any]:
    p = copy.deepcopy(SEED_PEER)
    p["metadata"]["name"] = name
    p["spec"] |= {"localASN": asn, "peerIP": "10.0.3.253"}
    return p


def config(*peers: dict[str, Any]) -> Config:
    return Config(
        load_balancer=load(SEED_LB),  # type: ignore[arg-type]
        gateway=load(SEED_NGG),  # type: ignore[arg-type]
        peers=[load(p) for p in peers],  # type: ignore[misc]
    )


def test_the_seeds_objects_validate_as_written() -> None:
    cfg = config(SEED_PEER)
    for doc in (SEED_LB, SEED_PEER, SEED_NGG):
        assert validate(doc, cfg)[1] == []
    # Applied in the seed's order, the BGPLoadBalancer comes before its BGPPeer.
    assert validate(SEED_LB, Config())[1] == []


def test_the_asn_comes_from_the_selected_peers_or_the_error_names_the_field() -> None:
    lb = load(SEED_LB)
    assert isinstance(lb, BGPLoadBalancer)
    peer = load(SEED_PEER)
    assert isinstance(peer, BGPPeer)
    one = Peer("bgppeer1", LABEL, peer.spec)
    assert local_asn_of(lb.spec, [one]) == 65001
    assert (
        local_asn_of(lb.spec, [])
        == "required: spec.peerSelector selects no BGPPeer to take it from"
    )
    unlabelled = Peer("elsewhere", {}, peer.spec.model_copy(update={"local_asn": 65009}))
    assert local_asn_of(lb.spec, [one, unlabelled]) == 65001  # not selected: no say
    odd = Peer("bgppeer2", LABEL, peer.spec.model_copy(update={"local_asn": 65003}))
    assert local_asn_of(lb.spec, [one, odd]) == (
        "required: the BGPPeers spec.peerSelector selects disagree "
        "(bgppeer1: 65001, bgppeer2: 65003)"
    )
    no_selector = lb.spec.model_copy(update={"peer_selector": None})
    assert local_asn_of(no_selector, [one]) == "required: no spec.peerSelector to take it from"


def test_a_peer_that_would_make_it_ambiguous_is_refused_naming_the_field() -> None:
    _, errors = validate(other_peer(65003), config(SEED_PEER))
    assert [e.field for e in errors] == ["spec.localASN"]
    assert "differs from 65001" in errors[0].reason
    assert validate(other_peer(65001), config(SEED_PEER))[1] == []
    # ...and a BGPLoadBalancer meeting disagreeing peers says why.
    _, errors = validate(SEED_LB, config(SEED_PEER, other_peer(65003)))
    assert [e.field for e in errors] == ["spec.localASN"]
    assert "bgppeer2: 65003" in errors[0].reason


def state(*peers: dict[str, Any]) -> ClusterState:
    s = ClusterState(NS)
    s.load_balancers = {"default": copy.deepcopy(SEED_LB)}
    s.gateways = {"default": copy.deepcopy(SEED_NGG)}
    s.peers = {p["metadata"]["name"]: copy.deepcopy(p) for p in peers}
    s.nodes = {
        f"node-0{i}": {
            "metadata": {"name": f"node-0{i}", "labels": {}},
            "status": {"addresses": [{"type": "InternalIP", "address": f"10.0.3.2{i}"}]},
        }
        for i in (1, 2)
    }
    s.leases = {
        f"bgplb-node-node-0{i}": {
            "metadata": {
                "name": f"bgplb-node-node-0{i}",
                "annotations": {"networking.bgplb.io/addresses": f"10.0.3.2{i}/24"},
            }
        }
        for i in (1, 2)
    }
    return s


def test_the_controller_plans_with_the_peers_asn() -> None:
    snapshot, problems = snapshot_from(
        state(SEED_PEER), now=0.0, lease_expiry=3.0, live=frozenset({"node-01", "node-02"})
    )
    assert problems == []
    assert snapshot.load_balancer is not None
    assert snapshot.load_balancer.local_asn == 65001
    sessions = plan(snapshot).sessions
    assert sessions
    assert {s.local_asn for s in sessions.values()} == {65001}


def test_the_controller_holds_when_the_asn_is_not_known() -> None:
    """Treated as a BGPLoadBalancer that does not parse: the controller keeps its last
    good plan rather than plan one without the cluster's ASN."""
    snapshot, problems = snapshot_from(state(), now=0.0, lease_expiry=3.0, live=frozenset())
    assert snapshot.load_balancer is None
    assert any(p.startswith("BGPLoadBalancer default: spec.localASN: required") for p in problems)


def test_a_peer_that_got_past_the_webhook_and_makes_it_ambiguous_is_left_out_alone() -> None:
    """The controller runs the webhook's gate: the later peer (by name) is refused,
    the cluster's ASN still comes from the first, nothing else is held."""
    live = frozenset({"node-01", "node-02"})
    snapshot, problems = snapshot_from(
        state(SEED_PEER, other_peer(65003)), now=0.0, lease_expiry=3.0, live=live
    )
    assert [p.name for p in snapshot.peers] == ["bgppeer1"]
    assert snapshot.load_balancer is not None
    assert snapshot.load_balancer.local_asn == 65001
    assert problems == [
        "BGPPeer bgppeer2: spec.localASN: 65003 differs from 65001, the ASN BGPLoadBalancer "
        "default takes from the BGPPeers it selects (it has no localASN of its own)"
    ]
