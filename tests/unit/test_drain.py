"""Graceful drain (issue 14 item 6): a cordoned or excluded node stays a next hop
announced with GRACEFUL_SHUTDOWN and the worst MED for the drain period, then leaves;
never every node at once."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

from bgplb.agent.desired import service_paths
from bgplb.api import BGPAdvertisedRouteSpec
from bgplb.api.communities import GRACEFUL_SHUTDOWN
from bgplb.controller.main import Controller
from bgplb.controller.snapshot import drain_deadline, snapshot_from
from bgplb.core.attributes import DRAIN_MED
from bgplb.core.objects import route_spec
from bgplb.core.plan import plan
from bgplb.core.snapshot import Drain, Service, Snapshot
from bgplb_lab.manifests import load_balancer
from tests.unit.test_plan import node, snapshot

WEB = Service("default", "web")
N1, N2, N3 = (IPv4Address(f"192.0.2.{i}") for i in (1, 2, 3))


def draining(s: Snapshot, states: dict[int, Drain]) -> Snapshot:
    return replace(
        s,
        nodes=tuple(
            node(i) if i not in states else replace(node(i), drain=states[i]) for i in (1, 2, 3)
        ),
    )


def test_a_draining_node_stays_a_next_hop_marked_then_leaves() -> None:
    d = plan(draining(snapshot(WEB), {2: Drain.DRAINING}))
    route = d.routes["default/web"]
    assert route.next_hops == (N1, N2, N3)
    assert route.draining == (N2,)
    assert route_spec(route).draining_next_hops == [N2]
    gone = plan(draining(snapshot(WEB), {2: Drain.DRAINED})).routes["default/web"]
    assert (gone.next_hops, gone.draining) == ((N1, N3), ())


def test_draining_every_node_withdraws_nothing() -> None:
    """A cordon of every node (a cluster upgrade gone wrong) keeps every next hop,
    marked: routers keep forwarding; nothing is black-holed."""
    every = dict.fromkeys((1, 2, 3), Drain.DRAINED)
    route = plan(draining(snapshot(WEB), every)).routes["default/web"]
    assert route.next_hops == route.draining == (N1, N2, N3)


def test_without_add_path_a_vip_moves_off_a_draining_node_in_one_update() -> None:
    """One path per VIP: moving it is an implicit replace, so it moves at once."""
    s = draining(snapshot(WEB, add_path=False), {1: Drain.DRAINING})
    s = replace(s, route_next_hops={"default/web": (N1,)})
    route = plan(s).routes["default/web"]
    assert route.next_hops != (N1,)
    assert route.draining == ()


def test_the_agent_marks_the_draining_next_hops_path_only() -> None:
    spec = BGPAdvertisedRouteSpec.model_validate(
        {
            "prefix": "203.0.113.10/32",
            "nextHops": ["192.0.2.1", "192.0.2.2"],
            "drainingNextHops": ["192.0.2.2"],
            "communities": ["65000:1"],
            "metric": 5,
            "service": {"namespace": "default", "name": "web"},
        }
    )
    paths = {p.next_hop: p.attributes for p in service_paths([spec], add_path=True)}
    assert paths[N1].communities == ((65000 << 16) | 1,)
    assert paths[N1].med == 5
    assert paths[N2].communities == ((65000 << 16) | 1, GRACEFUL_SHUTDOWN)
    assert paths[N2].med == DRAIN_MED
    assert {p.prefix for p in service_paths([spec], add_path=True)} == {
        IPv4Network("203.0.113.10/32")
    }


def k8s_node(name: str, ip: str, unschedulable: bool = False, **labels: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def test_cordon_and_the_exclude_label_start_a_drain_that_ends_on_time() -> None:
    c = Controller("kube-system", "me")
    c.load(
        "nodes",
        [
            k8s_node("n1", "192.0.2.1"),
            k8s_node("n2", "192.0.2.2", unschedulable=True),
            k8s_node(
                "n3", "192.0.2.3", **{"node.kubernetes.io/exclude-from-external-load-balancers": ""}
            ),
        ],
    )
    assert set(c.state.drain_seen) == {"n2", "n3"}
    c.state.load_balancers["default"] = load_balancer(drainSeconds=30)
    since = c.state.drain_seen["n2"]
    s, _ = snapshot_from(c.state, since + 1, 3.0, live=frozenset({"n1", "n2", "n3"}))
    assert [n.drain for n in s.nodes] == [Drain.ACTIVE, Drain.DRAINING, Drain.DRAINING]
    s, _ = snapshot_from(c.state, since + 31, 3.0, live=frozenset({"n1", "n2", "n3"}))
    assert s.nodes[1].drain is Drain.DRAINED
    assert drain_deadline(c.state, since + 1, 30) == min(c.state.drain_seen.values()) + 30
    assert drain_deadline(c.state, since + 31, 30) is None
    # Uncordoned: active again at once (its next hop returns with the next plan).
    c._route("nodes", {"type": "MODIFIED", "object": k8s_node("n2", "192.0.2.2")})
    assert "n2" not in c.state.drain_seen
