"""Self-fencing needs witnesses; the controller freezes liveness while it is blind."""

from __future__ import annotations

import time

import pytest

from bgplb.agent.witness import Answer, parse
from bgplb.controller.main import Controller
from bgplb_lab.manifests import service


@pytest.mark.parametrize(
    "body",
    [[], None, "x", {}, {"reachableForSeconds": "3"}, {"reachableForSeconds": True},
     {"reachableForSeconds": 1, "renewedSecondsAgo": []}, {"reachableForSeconds": -1},
     {"reachableForSeconds": float("nan")}, {"reachableForSeconds": float("inf")},
     {"reachableForSeconds": 1, "renewedSecondsAgo": float("nan")}],
)  # fmt: skip
def test_malformed_witness_answers_count_as_no_answer(body: object) -> None:
    assert parse(body) is None


def test_witness_answers_parse() -> None:
    assert parse({"reachableForSeconds": 3, "renewedSecondsAgo": 0.5}) == Answer(3.0, 0.5)
    assert parse({"reachableForSeconds": 0, "renewedSecondsAgo": None}) == Answer(0.0, None)


def _lease(name: str, renewed: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {"holderIdentity": name, "renewTime": renewed},
    }


def test_controller_freezes_liveness_while_blind_and_credits_nodes_after() -> None:
    c = Controller("kube-system", "me", lease_expiry=3.0)
    c.contact([_lease("bgplb-node-n1", "2026-01-01T00:00:00.000000Z")])
    now = time.monotonic()
    c.state.lease_seen["bgplb-node-n1"] = now  # just renewed
    c.state.lease_seen["bgplb-node-n2"] = now - 10  # long dead
    c.contact(None)
    assert c.frozen_live is None  # one failed probe is noise
    c.contact(None)
    assert c.live_nodes() == {"bgplb-node-n1"}
    c.state.lease_seen["bgplb-node-n1"] = now - 60  # what a minute without renewals looks like
    assert c.live_nodes() == {"bgplb-node-n1"}, "frozen while blind"
    c.contact([])
    assert c.frozen_live is None
    assert c.live_nodes() == {"bgplb-node-n1"}, "credited a fresh lease period"
    assert "bgplb-node-n2" not in c.live_nodes()


def test_a_renewal_seen_by_the_probe_counts_as_one() -> None:
    c = Controller("kube-system", "me", lease_expiry=3.0)
    c.contact([_lease("bgplb-node-n1", "2026-01-01T00:00:00.000000Z")])
    assert c.live_nodes() == frozenset()  # first sight of an old renewTime: dead
    c.contact([_lease("bgplb-node-n1", "2026-01-01T00:00:01.000000Z")])
    assert c.live_nodes() == {"bgplb-node-n1"}


def test_another_load_balancers_services_are_not_indexed_or_reconciled_for() -> None:
    c = Controller("kube-system", "me", lease_expiry=3.0)
    theirs = service("m", loadBalancerClass="metallb.io/metallb")
    c._route("services", {"type": "ADDED", "object": theirs})
    assert not c.trigger.is_set()
    assert c.state.services == {}
    mine = service("b")
    c._route("services", {"type": "ADDED", "object": mine})
    assert c.trigger.is_set()
    assert set(c.state.services) == {"default/b"}
    # Handed to another class: forgotten (its VIP is withdrawn by the next plan).
    c.trigger.clear()
    c._route("services", {"type": "MODIFIED", "object": {**mine, "spec": theirs["spec"]}})
    assert c.trigger.is_set()
    assert c.state.services == {}


def test_the_same_renewal_written_two_ways_is_not_a_renewal() -> None:
    """The watch gives renewTime as `...Z`, a typed client LIST as `...+00:00`: the
    same instant. Taken for a new renewal, every probe credited a dead node with a
    fresh lease period, delaying its failover by up to one probe interval."""
    c = Controller("kube-system", "me", lease_expiry=3.0)
    c.observe_lease({"type": "ADDED", "object": _lease("bgplb-node-n1", "2026-01-01T00:00:00.5Z")})
    c.state.lease_seen["bgplb-node-n1"] = seen = time.monotonic() - 10
    c.contact([_lease("bgplb-node-n1", "2026-01-01T00:00:00.500000+00:00")])
    assert c.state.lease_seen["bgplb-node-n1"] == seen
    assert c.live_nodes() == frozenset()


def test_api_contact_reads_one_once_the_api_server_answered() -> None:
    from prometheus_client import REGISTRY

    from bgplb.controller import metrics

    metrics.API_CONTACT.set(0)  # as a fresh process starts
    c = Controller("kube-system", "me", lease_expiry=3.0)
    c.contact([])
    assert REGISTRY.get_sample_value("bgplb_api_contact") == 1
    c.contact(None)
    c.contact(None)
    assert REGISTRY.get_sample_value("bgplb_api_contact") == 0
    c.contact([])
    assert REGISTRY.get_sample_value("bgplb_api_contact") == 1


def _node(name: str, heartbeat: str, **labels: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": labels, "resourceVersion": heartbeat},
        "spec": {},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "198.51.100.11"}],
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": heartbeat}],
            "images": [{"names": ["registry.example/image:1"], "sizeBytes": 1}],
        },
    }


def test_a_node_heartbeat_is_not_a_reason_to_plan() -> None:
    """Kubelets post their status every few seconds; only what the plan reads (labels,
    cordon, addresses) is a change. Each heartbeat used to cost a full pass: in the
    lab's four nodes, two a second."""
    c = Controller("kube-system", "me", lease_expiry=3.0)
    c._route("nodes", {"type": "ADDED", "object": _node("n1", "2026-01-01T00:00:00Z")})
    assert c.trigger.is_set()
    c.trigger.clear()
    c._route("nodes", {"type": "MODIFIED", "object": _node("n1", "2026-01-01T00:00:10Z")})
    assert not c.trigger.is_set()
    assert "images" not in c.state.nodes["n1"]["status"]  # only what is read is kept
    c._route("nodes", {"type": "MODIFIED", "object": _node("n1", "2026-01-01T00:00:20Z", a="b")})
    assert c.trigger.is_set()
    assert c.state.nodes["n1"]["metadata"]["labels"] == {"a": "b"}
    c.trigger.clear()
    cordoned = _node("n1", "2026-01-01T00:00:30Z", a="b")
    cordoned["spec"] = {"unschedulable": True}
    c._route("nodes", {"type": "MODIFIED", "object": cordoned})
    assert c.trigger.is_set()
    assert "n1" in c.state.drain_seen


def _slice(service: str, ready: bool) -> dict[str, object]:
    return {
        "metadata": {
            "name": f"{service}-abcde",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service},
        },
        "endpoints": [{"addresses": ["203.0.113.130"], "conditions": {"ready": ready}}],
    }


def test_an_endpointslice_seen_before_its_service_still_counts() -> None:
    """The two kinds come on separate watches: a slice (written by the endpoint
    controller after the Service) can arrive first. Dropped, the Service's endpoints
    stayed unknown, and a Service with none ready was advertised until its slice
    next changed."""
    from bgplb.controller.snapshot import ready_endpoints

    c = Controller("kube-system", "me", lease_expiry=3.0)
    c._route("endpointslices", {"type": "ADDED", "object": _slice("web", ready=False)})
    assert not c.trigger.is_set()  # not ours (yet): nothing to plan
    c._route("services", {"type": "ADDED", "object": service("web")})
    assert ready_endpoints(c.state.endpoint_slices.values()) == {"default/web": 0}


def test_slices_of_services_not_ours_are_not_kept_for_long() -> None:
    from bgplb.controller.snapshot import ready_endpoints

    c = Controller("kube-system", "me", lease_expiry=3.0)
    c._route("endpointslices", {"type": "ADDED", "object": _slice("other", ready=True)})
    c._route("endpointslices", {"type": "ADDED", "object": _slice("web", ready=False)})
    for key, (_, obj) in list(c.state.unclaimed_slices.items()):
        c.state.unclaimed_slices[key] = (time.monotonic() - 60, obj)  # a minute ago
    c._route("endpointslices", {"type": "ADDED", "object": _slice("third", ready=True)})
    assert set(c.state.unclaimed_slices) == {"default/third-abcde"}
    c._route("services", {"type": "ADDED", "object": service("web")})
    assert ready_endpoints(c.state.endpoint_slices.values()) == {}  # unknown, as before
