"""Admission decisions: field-named errors, cross-object rules, warnings, defaults."""

from __future__ import annotations

import base64
import json
from ipaddress import IPv4Network
from typing import Any

from bgplb.core.admission import Context, response, review
from bgplb.core.validate import Config, load
from bgplb_lab.manifests import gateway, load_balancer, peer, service


def request(obj: dict[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    return {"uid": "u1", "operation": operation, "object": obj}


LB = load_balancer(addressPools=[{"name": "pool1", "addresses": ["203.0.113.1-203.0.113.4"]}])


def ctx(**kw: Any) -> Context:
    config = Config(load_balancer=load(LB), peers=[load(peer("tor-a", peerIP="192.0.2.1"))])  # type: ignore[arg-type]
    return Context(config=config, **kw)


def test_bad_peer_is_refused_naming_each_field() -> None:
    bad = peer("tor-b", peerIP="192.0.2.1", peerASN=65001, sessions=0)
    d = review(request(bad), ctx(), mutate=False)
    assert not d.allowed
    fields = {e.field for e in d.errors}
    assert fields >= {"spec.sessions"} or fields >= {"spec.peerASN"}
    answer = response(request(bad), d)["response"]
    assert answer["status"]["code"] == 422
    assert "spec." in answer["status"]["message"]


def test_duplicate_peer_ip_and_ibgp() -> None:
    d = review(request(peer("tor-b", peerIP="192.0.2.1")), ctx(), mutate=False)
    assert [str(e) for e in d.errors] == [
        "spec.peerIP: 192.0.2.1 is already the peer of BGPPeer tor-a"
    ]
    d = review(request(peer("tor-b", peerIP="192.0.2.2", peerASN=65001)), ctx(), mutate=False)
    assert d.errors[0].field == "spec.peerASN"


def test_floating_ip_must_sit_on_a_node_subnet() -> None:
    c = ctx(node_subnets=[IPv4Network("192.0.2.0/24")])
    d = review(request(gateway("192.0.2.100", "198.51.100.7")), c, mutate=False)
    assert [e.field for e in d.errors] == ["spec.floatingIPs[1]"]
    assert "no node's subnet (192.0.2.0/24)" in d.errors[0].reason
    # Before any agent reported, there is nothing to judge against.
    assert review(request(gateway("198.51.100.7", "198.51.100.8")), ctx(), mutate=False).allowed


def test_singleton_name() -> None:
    d = review(request(gateway("192.0.2.100", name="other")), ctx(), mutate=False)
    assert [e.field for e in d.errors] == ["metadata.name"]


def test_risky_but_legal_setups_are_warned_about() -> None:
    d = review(request(gateway("192.0.2.100")), ctx(), mutate=False)
    assert d.allowed
    assert any("only one floating IP" in w for w in d.warnings)
    d = review(request(peer("tor-a", peerIP="192.0.2.1", sessions=1)), ctx(), mutate=False)
    assert any(w.startswith("spec.sessions: 1") for w in d.warnings)
    assert any("only one BGPPeer" in w for w in d.warnings)
    d = review(request(peer("tor-b", peerIP="192.0.2.2", sessions=2)), ctx(), mutate=False)
    assert d.allowed
    assert d.warnings == []


def test_defaults_are_patched_in() -> None:
    d = review(request(peer("tor-b", peerIP="192.0.2.2")), ctx(), mutate=True)
    assert d.allowed
    assert d.patch is not None
    spec = d.patch[0]["value"]
    assert spec["holdTimeSeconds"] == 9
    assert spec["sessions"] >= 1
    raw = response(request(peer()), d)["response"]
    assert raw["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(raw["patch"]))[0]["path"] == "/spec"
    # An invalid object is not the defaulting webhook's to refuse.
    assert review(request(peer(sessions=0)), ctx(), mutate=True).allowed


def test_service_vip_requests() -> None:
    other = service("a", loadBalancerIP="203.0.113.2")
    c = ctx(services=[other])
    assert review(request(service("b", loadBalancerIP="203.0.113.3")), c, mutate=False).allowed
    taken = review(request(service("b", loadBalancerIP="203.0.113.2")), c, mutate=False)
    assert [str(e) for e in taken.errors] == [
        "spec.loadBalancerIP: 203.0.113.2 is already the VIP of Service default/a"
    ]
    outside = review(request(service("b", loadBalancerIP="198.51.100.1")), c, mutate=False)
    assert outside.errors[0].reason == "198.51.100.1 is not in any address pool"
    nonsense = review(request(service("b", loadBalancerIP="300.1.1.1")), c, mutate=False)
    assert nonsense.errors[0].field == "spec.loadBalancerIP"
    svc = service("b")
    svc["metadata"]["annotations"] = {"networking.bgplb.io/address-pool": "nope"}
    d = review(request(svc), c, mutate=False)
    assert d.errors[0].field == "metadata.annotations[networking.bgplb.io/address-pool]"
    # Someone else's class is not ours to judge.
    foreign = service("c", loadBalancerIP="198.51.100.1", loadBalancerClass="example.com/x")
    assert review(request(foreign), c, mutate=False).allowed


def deleting(obj: dict[str, Any]) -> dict[str, Any]:
    return {"uid": "u1", "operation": "DELETE", "object": None, "oldObject": obj}


def with_vip(name: str, ip: str) -> dict[str, Any]:
    svc = service(name)
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip}]}}
    return svc


def test_a_singleton_in_use_is_not_deleted() -> None:
    users = [with_vip(f"s{i}", f"203.0.113.{i}") for i in range(1, 5)]
    users.append(service("pending"))  # no VIP yet: not a user
    users.append(with_vip("foreign", "198.51.100.9") | {"spec": {"type": "ClusterIP"}})
    c = ctx(services=users)
    for singleton in (LB, gateway("192.0.2.100")):
        d = review(deleting(singleton), c, mutate=False)
        assert not d.allowed
        assert d.errors[0].field == "metadata.name"
        assert "4 Service(s)" in d.message
        assert "default/s1, default/s2, default/s3 and 1 more" in (d.message)
        assert "networking.bgplb.io/allow-delete=true" in d.message
        answer = response(deleting(singleton), d)["response"]
        assert answer["allowed"] is False
        assert answer["status"]["code"] == 422
        # Deliberately, with the annotation:
        annotated = json.loads(json.dumps(singleton))
        annotated["metadata"]["annotations"] = {"networking.bgplb.io/allow-delete": "true"}
        assert review(deleting(annotated), c, mutate=False).allowed
        # With no Service using it:
        assert review(deleting(singleton), ctx(services=users[4:]), mutate=False).allowed
        # The defaulting webhook never judges a deletion.
        assert review(deleting(singleton), c, mutate=True).allowed


def test_other_deletions_are_allowed() -> None:
    c = ctx(services=[with_vip("s1", "203.0.113.1")])
    assert review(deleting(peer(sessions=0)), c, mutate=False).allowed
    assert review(deleting(gateway("192.0.2.100", name="other")), c, mutate=False).allowed


def test_objects_outside_the_operator_namespace_are_refused() -> None:
    obj = peer("tor-b", peerIP="192.0.2.2")
    obj["metadata"]["namespace"] = "default"
    d = review(request(obj), Context(namespace="kube-system"), mutate=False)
    assert [e.field for e in d.errors] == ["metadata.namespace"]
