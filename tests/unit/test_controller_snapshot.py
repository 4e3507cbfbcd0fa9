"""The controller's pure translation of cluster objects into a planner snapshot."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

from bgplb.api import BGPSessionSpec
from bgplb.controller.diff import diff_objects
from bgplb.controller.snapshot import ClusterState, endpoint_nodes, snapshot_from


def node(name: str, ip: str, **labels: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def lease(name: str, addresses: str) -> dict[str, object]:
    return {
        "metadata": {
            "name": f"bgplb-node-{name}",
            "annotations": {"networking.bgplb.io/addresses": addresses},
        }
    }


def test_nodes_are_live_by_lease_and_carry_its_addresses() -> None:
    state = ClusterState("kube-system")
    state.nodes = {"n1": node("n1", "192.0.2.11"), "n2": node("n2", "192.0.2.12")}
    state.leases = {"bgplb-node-n1": lease("n1", "198.51.100.5/24,192.0.2.11/24")}
    state.lease_seen = {"bgplb-node-n1": 100.0}
    snapshot, problems = snapshot_from(state, now=101.0, lease_expiry=3.0)
    assert problems == []
    n1, n2 = snapshot.nodes
    assert n1.ready
    assert not n2.ready
    assert n1.addresses == (IPv4Interface("192.0.2.11/24"), IPv4Interface("198.51.100.5/24"))
    assert n2.addresses == (IPv4Interface("192.0.2.12/32"),)
    later, _ = snapshot_from(state, now=103.5, lease_expiry=3.0)
    assert not later.nodes[0].ready


def test_services_and_endpoints() -> None:
    state = ClusterState("kube-system")
    state.services = {
        "default/web": {
            "metadata": {
                "namespace": "default",
                "name": "web",
                "annotations": {"networking.bgplb.io/address-pool": "a"},
            },
            "spec": {
                "type": "LoadBalancer",
                "externalTrafficPolicy": "Local",
                "loadBalancerIP": "203.0.113.5",
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}},
        },
    }
    state.endpoint_slices = {
        "default/web-abc": {
            "metadata": {
                "namespace": "default",
                "name": "web-abc",
                "labels": {"kubernetes.io/service-name": "web"},
            },
            "endpoints": [
                {"nodeName": "n1", "conditions": {"ready": True}},
                {"nodeName": "n2", "conditions": {"ready": False}},
            ],
        }
    }
    snapshot, _ = snapshot_from(state, now=0.0, lease_expiry=3.0)
    (svc,) = snapshot.services
    assert svc.local_traffic
    assert svc.pool == "a"
    assert svc.requested_ip == svc.current_ip == IPv4Address("203.0.113.5")
    assert svc.endpoint_nodes == frozenset({"n1"})
    assert endpoint_nodes([]) == {}


def test_invalid_configuration_is_a_problem_not_a_crash() -> None:
    state = ClusterState("kube-system")
    state.load_balancers = {
        "default": {
            "kind": "BGPLoadBalancer",
            "metadata": {"name": "default"},
            "spec": {"localASN": 0},
        }
    }
    snapshot, problems = snapshot_from(state, now=0.0, lease_expiry=3.0)
    assert snapshot.load_balancer is None
    assert "BGPLoadBalancer default is invalid" in problems[0]


def test_diff_ignores_server_defaults_and_finds_real_changes() -> None:
    spec = {
        "localASN": 65001,
        "localIP": "192.0.2.100",
        "nodeName": "n1",
        "peerASN": 65000,
        "peerIP": "192.0.2.1",
    }
    stored = {
        "metadata": {"name": "s", "labels": {"a": "b"}},
        "spec": {**spec, "holdTimeSeconds": 9, "keepaliveTimeSeconds": 3, "type": "Service"},
    }
    desired = {"metadata": {"name": "s", "labels": {"a": "b"}}, "spec": spec}
    assert len(diff_objects([desired], {"s": stored}, BGPSessionSpec)) == 0
    moved = {"metadata": {"name": "s", "labels": {"a": "b"}}, "spec": {**spec, "nodeName": "n2"}}
    writes = diff_objects([moved], {"s": stored, "old": stored}, BGPSessionSpec)
    assert ([o["metadata"]["name"] for o in writes.update], writes.delete) == (["s"], ["old"])


def test_in_cluster_server_from_the_environment_not_dns() -> None:
    """Found running the chart's Pods with no cluster DNS: kopf's service-account login
    dialled kubernetes.default.svc; the controller uses the Service's address."""
    from bgplb.controller.main import in_cluster_server

    env = {"KUBERNETES_SERVICE_HOST": "198.19.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_server(env) == "https://198.19.0.1:443"
    v6 = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_server(v6) == "https://[fd00::1]:443"
    assert in_cluster_server({}) is None


def test_a_stopping_agent_can_ask_for_a_longer_lease() -> None:
    """A stopping agent renews once with its restart grace: the node stays live that
    long (its floating IPs stay put); never shorter than the controller's own expiry."""
    from bgplb.controller.snapshot import ClusterState, lease_live, lease_period

    assert lease_period(None, 3.0) == 3.0
    assert lease_period({"spec": {"leaseDurationSeconds": 15}}, 3.0) == 15.0
    assert lease_period({"spec": {"leaseDurationSeconds": 1}}, 3.0) == 3.0
    assert lease_period({"spec": {"leaseDurationSeconds": "x"}}, 3.0) == 3.0
    state = ClusterState("kube-system")
    state.leases["bgplb-node-n1"] = {"spec": {"leaseDurationSeconds": 15}}
    state.lease_seen["bgplb-node-n1"] = 100.0
    assert lease_live(state, "bgplb-node-n1", 110.0, 3.0)
    assert not lease_live(state, "bgplb-node-n1", 115.0, 3.0)
    assert not lease_live(state, "bgplb-node-n2", 100.0, 3.0)


def test_fields_from_a_newer_version_are_read_past() -> None:
    """Stored objects with fields this version does not know still parse (a reader
    that refused them would drop the singleton and plan without it); a user's
    manifest with the same field is still refused as a typo."""
    from bgplb.core.validate import parse
    from bgplb_lab.manifests import gateway, load_balancer

    lb = load_balancer(
        addressPools=[{"name": "p", "addresses": ["203.0.113.1-203.0.113.4"], "future": 1}],
        futureSpecField={"x": 1},
    )
    lb["status"] = {"futureStatus": True}
    state = ClusterState("kube-system")
    state.load_balancers = {"default": lb}
    state.gateways = {"default": gateway("192.0.2.100") | {"status": {"futureCount": 2}}}
    snapshot, problems = snapshot_from(state, now=0.0, lease_expiry=3.0)
    assert problems == []
    assert snapshot.load_balancer is not None
    assert snapshot.gateway is not None
    assert [p.name for p in snapshot.load_balancer.address_pools] == ["p"]
    assert parse(lb, lenient=True)[1] == []
    assert {e.field for e in parse(lb)[1]} >= {"spec.futureSpecField"}


def test_what_is_in_force_reads_back_as_a_plan() -> None:
    """A controller's first pass paces against this (controller/withdrawals.py)."""
    from bgplb.controller.snapshot import in_force, observed_generations

    state = ClusterState("kube-system")
    state.routes["default-default-web"] = {
        "metadata": {"name": "default-default-web"},
        "spec": {
            "prefix": "203.0.113.10/32",
            "nextHops": ["192.0.2.12", "192.0.2.11"],
            "service": {"namespace": "default", "name": "web"},
        },
    }
    state.routes["control-plane"] = {
        "metadata": {"name": "control-plane"},
        "spec": {"prefix": "198.51.100.200/32", "nextHops": ["192.0.2.11"]},
    }
    state.routes["broken"] = {"metadata": {"name": "broken"}, "spec": {"prefix": "nope"}}
    state.sessions["tor-n1"] = {
        "metadata": {"name": "tor-n1"},
        "spec": {
            "peer": "tor",
            "nodeName": "n1",
            "localIP": "192.0.2.11",
            "localASN": 65001,
            "peerIP": "192.0.2.1",
            "peerASN": 65000,
        },
    }
    got = in_force(state)
    assert set(got.routes) == {"default/web"}
    assert got.routes["default/web"].next_hops == (
        IPv4Address("192.0.2.11"),
        IPv4Address("192.0.2.12"),
    )
    assert got.vips == {"default/web": IPv4Address("203.0.113.10")}
    assert set(got.sessions) == {"tor-n1"}

    state.load_balancers["default"] = {
        "metadata": {"name": "default", "generation": 3},
        "status": {"observedGeneration": 3},
    }
    state.peers["tor"] = {"metadata": {"name": "tor", "generation": 2}}
    assert observed_generations(state) == (3, None, (("tor", None),))


def _peer(name: str, ip: str) -> dict[str, object]:
    return {
        "apiVersion": "networking.bgplb.io/v1",
        "kind": "BGPPeer",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {"localASN": 65001, "peerASN": 65002, "peerIP": ip},
    }


def _lb(pool: str) -> dict[str, object]:
    return {
        "apiVersion": "networking.bgplb.io/v1",
        "kind": "BGPLoadBalancer",
        "metadata": {"name": "default", "namespace": "kube-system"},
        "spec": {"localASN": 65001, "addressPools": [{"name": "p", "addresses": [pool]}]},
    }


def _ngg() -> dict[str, object]:
    return {
        "apiVersion": "networking.bgplb.io/v1",
        "kind": "NetworkGatewayGroup",
        "metadata": {"name": "default", "namespace": "kube-system"},
        "spec": {"floatingIPs": ["192.0.2.100"]},
    }


def test_the_webhooks_rules_apply_to_what_got_past_it() -> None:
    """Objects written while the webhook was down: of two BGPPeers with one peer IP
    the later (by name) is left out, alone; a BGPLoadBalancer whose pool holds a
    floating IP is not planned from (the controller keeps its last good plan)."""
    state = ClusterState("kube-system")
    state.peers = {"a": _peer("a", "192.0.2.1"), "b": _peer("b", "192.0.2.1")}
    state.load_balancers = {"default": _lb("203.0.113.0/28")}
    state.gateways = {"default": _ngg()}
    snapshot, problems = snapshot_from(state, now=0.0, lease_expiry=3.0, live=frozenset())
    assert [p.name for p in snapshot.peers] == ["a"]
    assert problems == ["BGPPeer b: spec.peerIP: 192.0.2.1 is already the peer of BGPPeer a"]
    assert snapshot.load_balancer is not None
    state.load_balancers = {"default": _lb("192.0.2.96/28")}
    snapshot, problems = snapshot_from(state, now=0.0, lease_expiry=3.0, live=frozenset())
    assert snapshot.load_balancer is None
    assert any("contains floating IP 192.0.2.100" in p for p in problems)


def test_ready_endpoints_are_counted_and_no_slice_is_unknown() -> None:
    from bgplb.controller.snapshot import ready_endpoints

    def ep(node: str | None, ready: bool | None) -> dict[str, object]:
        conditions = {} if ready is None else {"ready": ready}
        return {"conditions": conditions, **({"nodeName": node} if node else {})}

    slices = [
        {
            "metadata": {"namespace": "default", "labels": {"kubernetes.io/service-name": "a"}},
            "endpoints": [ep("n1", True), ep("n2", False), ep(None, None)],
        },
        {
            "metadata": {"namespace": "default", "labels": {"kubernetes.io/service-name": "b"}},
            "endpoints": [ep("n1", False)],
        },
    ]
    # Unknown readiness counts as ready; a Service with no slice is absent (unknown).
    assert ready_endpoints(slices) == {"default/a": 2, "default/b": 0}
    assert endpoint_nodes(slices) == {"default/a": frozenset({"n1"}), "default/b": frozenset()}
