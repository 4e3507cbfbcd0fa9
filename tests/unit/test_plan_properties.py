"""Hypothesis properties of every planner invariant."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from ipaddress import IPv4Network
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from bgplb.core.plan import DesiredState, plan, replan_services, with_decisions
from bgplb.core.pools import Pool
from bgplb.core.routes import load_balancer_nodes
from bgplb.core.sessions import control_plane_nodes, data_plane_peers
from bgplb.core.snapshot import Snapshot
from tests.unit.strategies import snapshots

T = TypeVar("T")

settings.register_profile("default", max_examples=150, deadline=None)
settings.load_profile("default")


def _shuffled(s: Snapshot, seed: int) -> Snapshot:
    rng = random.Random(seed)

    def shuffle(items: tuple[T, ...]) -> tuple[T, ...]:
        out = list(items)
        rng.shuffle(out)
        return tuple(out)

    gateway = s.gateway
    if gateway is not None:
        gateway = gateway.model_copy(
            update={"floating_ips": list(shuffle(tuple(gateway.floating_ips)))}
        )
    return replace(
        s,
        nodes=shuffle(s.nodes),
        services=shuffle(s.services),
        peers=shuffle(s.peers),
        gateway=gateway,
    )


def _ours(s: Snapshot) -> set[str]:
    return {x.key for x in s.services if x.load_balancer_class in (None, s.load_balancer_class)}


@given(snapshots(), st.integers())
def test_deterministic_under_reordering(s: Snapshot, seed: int) -> None:
    assert plan(_shuffled(s, seed)) == plan(s)


def _converged(s: Snapshot) -> tuple[Snapshot, DesiredState]:
    """A move between live nodes takes two plans (release, then hand over: see
    core/floating.py); these snapshots' agents report nothing, so the second ends it."""
    first = plan(s)
    if first.floating_ips.releasing:
        s = with_decisions(s, first)
        first = plan(s)
    assert not first.floating_ips.releasing
    return s, first


@given(snapshots())
def test_unchanged_input_gives_unchanged_plan(s: Snapshot) -> None:
    s, first = _converged(s)
    settled = with_decisions(s, first)
    assert plan(settled) == first
    assert plan(with_decisions(settled, first)) == first


# --- floating IPs ---------------------------------------------------------------


def _eligible(s: Snapshot) -> dict[object, list[str]]:
    assert s.gateway is not None
    own = {a.ip for n in s.nodes for a in n.addresses}
    return {
        ip: [
            n.name
            for n in s.nodes
            if n.ready and any(ip in a.network for a in n.addresses) and ip not in own
        ]
        for ip in s.gateway.floating_ips
    }


@given(snapshots())
def test_floating_ips_go_to_ready_nodes_in_their_subnet(s: Snapshot) -> None:
    d = plan(s)
    placement = d.floating_ips
    by_name = {n.name: n for n in s.nodes}
    floating = set(s.gateway.floating_ips) if s.gateway else set()
    assert set(placement.holders) | set(placement.unplaced) == floating
    assert not set(placement.holders) & set(placement.unplaced)
    for ip, node in placement.holders.items():
        assert by_name[node].ready
        assert any(ip in a.network for a in by_name[node].addresses)
    if s.gateway:
        eligible = _eligible(s)
        for ip, reason in placement.unplaced.items():
            assert reason
            if ip in placement.releasing:  # moving between live nodes
                assert eligible[ip]
            else:
                assert not eligible[ip]


@given(snapshots())
def test_losing_a_node_moves_only_its_floating_ips(s: Snapshot) -> None:
    first = plan(s)
    settled = with_decisions(s, first)
    for lost in s.nodes:
        nodes = tuple(replace(n, ready=False) if n is lost else n for n in settled.nodes)
        after = plan(replace(settled, nodes=nodes)).floating_ips.holders
        for ip, node in first.floating_ips.holders.items():
            if node != lost.name:
                assert after[ip] == node
            else:
                assert after.get(ip) != lost.name


@given(snapshots())
def test_new_floating_ips_are_balanced(s: Snapshot) -> None:
    fresh = replace(s, floating_ip_holders={})
    holders = plan(fresh).floating_ips.holders
    if not s.gateway:
        return
    load = Counter(holders.values())
    eligible = _eligible(s)
    for ip, node in holders.items():
        for other in eligible[ip]:
            assert load[node] <= load[other] + 1, (ip, node, other, load)


@given(snapshots(), snapshots())
def test_current_holder_is_kept_while_eligible(s: Snapshot, other: Snapshot) -> None:
    if not s.gateway:
        return
    eligible = _eligible(s)
    # A move between live nodes passes through a release (core/floating.py): compare
    # with where the IPs end up.
    _, converged = _converged(replace(s, floating_ip_holders=other.floating_ip_holders))
    holders = converged.floating_ips.holders
    load = Counter(holders.values())
    for ip, node in other.floating_ip_holders.items():
        if ip in eligible and node in eligible[ip] and holders[ip] != node:
            # Only redundancy moves a kept IP: to a node that holds nothing else.
            assert load[holders[ip]] == 1


@given(snapshots())
def test_no_node_hoards_ips_while_an_eligible_node_has_none(s: Snapshot) -> None:
    if not s.gateway:
        return
    _, converged = _converged(s)  # a redundancy move ends after its release step
    holders = converged.floating_ips.holders
    load = Counter(holders.values())
    for ip, node in holders.items():
        if load[node] >= 2:
            assert all(load[m] > 0 for m in _eligible(s)[ip]), (ip, node, load)


# --- sessions -------------------------------------------------------------------


@given(snapshots())
def test_service_sessions(s: Snapshot) -> None:
    assert s.load_balancer is not None
    d = plan(s)
    holders = d.floating_ips.holders
    asn = s.load_balancer.local_asn
    assert asn is not None
    peers = data_plane_peers(s.load_balancer, asn, s.peers, len(holders))
    distinct_nodes = len(set(holders.values()))
    for name, spec in peers:
        mine = {k: v for k, v in d.sessions.items() if v.type == "Service" and v.peer == name}
        ips = [v.floating_ip for v in mine.values()]
        nodes = [v.node_name for v in mine.values()]
        assert len(set(ips)) == len(ips) == len(set(nodes))
        assert len(mine) == min(spec.sessions, distinct_nodes)
        if len(mine) < spec.sessions:
            assert d.session_shortfalls[name]
        for key, v in mine.items():
            assert key == f"{name}-{v.node_name}"
            assert v.floating_ip is not None
            assert holders[v.floating_ip] == v.node_name
            assert v.local_ip == v.floating_ip
            assert (v.peer_ip, v.peer_asn, v.local_asn) == (
                spec.peer_ip,
                spec.peer_asn,
                spec.local_asn,
            )


@given(snapshots())
def test_peers_come_from_selector_else_control_plane(s: Snapshot) -> None:
    assert s.load_balancer is not None
    lb = s.load_balancer
    assert lb.local_asn is not None
    names = {name for name, _ in data_plane_peers(lb, lb.local_asn, s.peers, 2)}
    if lb.peer_selector is None:
        cp = lb.control_plane.peers if lb.control_plane else []
        assert len(names) == len(cp)
    else:
        assert names == {p.name for p in s.peers if p.labels.get("role") == "dp"}


@given(snapshots())
def test_control_plane_sessions(s: Snapshot) -> None:
    assert s.load_balancer is not None
    assert s.load_balancer.control_plane is not None
    d = plan(s)
    want = set()
    for peer in s.load_balancer.control_plane.peers:
        for node in control_plane_nodes(s.nodes):
            if not peer.control_plane_nodes or node.ip in peer.control_plane_nodes:
                want.add((f"{peer.ip}-{node.name}", node.ip, peer.ip))
    got = {(k, v.local_ip, v.peer_ip) for k, v in d.sessions.items() if v.type == "ControlPlane"}
    assert got == want


# --- VIPs -----------------------------------------------------------------------


@given(snapshots())
def test_vips_unique_in_pool_and_every_service_answered(s: Snapshot) -> None:
    assert s.load_balancer is not None
    d = plan(s)
    pools = {p.name: Pool.from_api(p) for p in s.load_balancer.address_pools}
    ours = _ours(s)
    assert set(d.vips) <= ours
    assert set(d.service_problems) <= ours
    assert len(set(d.vips.values())) == len(d.vips)
    for svc in s.services:
        if svc.key not in ours:
            continue
        assert svc.key in d.vips or svc.key in d.service_problems
        if svc.key in d.vips:
            address = int(d.vips[svc.key])
            allowed = [pools[svc.pool]] if svc.pool else list(pools.values())
            assert any(address in p for p in allowed)


@given(snapshots())
def test_requested_vip_is_honoured_when_free_and_in_pool(s: Snapshot) -> None:
    d = plan(s)
    for svc in s.services:
        if svc.key not in _ours(s) or svc.requested_ip is None:
            continue
        if d.vips.get(svc.key) != svc.requested_ip:
            assert "requested " in d.service_problems[svc.key] or (
                svc.current_ip == svc.requested_ip
            )


@given(snapshots())
def test_existing_vip_is_kept(s: Snapshot) -> None:
    assert s.load_balancer is not None
    d = plan(s)
    pools = {p.name: Pool.from_api(p) for p in s.load_balancer.address_pools}
    claimed = Counter(x.current_ip for x in s.services if x.key in _ours(s))
    for svc in s.services:
        ip = svc.current_ip
        if svc.key not in _ours(s) or ip is None or claimed[ip] > 1:
            continue
        allowed = [pools[svc.pool]] if svc.pool in pools else ([] if svc.pool else pools.values())
        requested_elsewhere = svc.requested_ip not in (None, ip)
        if any(int(ip) in p for p in allowed) and not requested_elsewhere:
            assert d.vips[svc.key] == ip


@given(snapshots())
def test_request_failure_keeps_the_old_vip(s: Snapshot) -> None:
    d = plan(s)
    for svc in s.services:
        if svc.key in d.service_problems and "requested" in d.service_problems[svc.key]:
            assert d.vips.get(svc.key) in (None, svc.current_ip)


# --- routes ---------------------------------------------------------------------


def _check_routes(s: Snapshot, d: DesiredState) -> None:
    assert s.load_balancer is not None
    lb_nodes = load_balancer_nodes(s.nodes, s.load_balancer.load_balancer_node_selector)
    by_key = {x.key: x for x in s.services}
    assert set(d.routes) <= set(d.vips)
    for key in d.vips:
        assert key in d.routes or key in d.service_problems
    for key, route in d.routes.items():
        svc = by_key[key]
        assert route.prefix == IPv4Network(d.vips[key])
        eligible = {n.ip for n in lb_nodes if not svc.local_traffic or n.name in svc.endpoint_nodes}
        assert route.next_hops
        assert set(route.next_hops) <= eligible
        assert list(route.next_hops) == sorted(route.next_hops)
        if s.load_balancer.add_path:
            assert set(route.next_hops) == eligible
        else:
            assert len(route.next_hops) == 1


@given(snapshots())
def test_routes(s: Snapshot) -> None:
    _check_routes(s, plan(s))


@given(snapshots(add_path=False))
def test_without_add_path_vips_spread_evenly(s: Snapshot) -> None:
    services = tuple(replace(x, local_traffic=False) for x in s.services)
    d = plan(replace(s, services=services, route_next_hops={}))
    assert s.load_balancer is not None
    lb_nodes = load_balancer_nodes(s.nodes, s.load_balancer.load_balancer_node_selector)
    load = Counter(r.next_hops[0] for r in d.routes.values())
    counts = [load[n.ip] for n in lb_nodes]
    if counts:
        assert max(counts) - min(counts) <= 1


@given(snapshots(add_path=False))
def test_without_add_path_losing_a_node_moves_only_its_vips(s: Snapshot) -> None:
    first = plan(s)
    settled = with_decisions(s, first)
    for lost in s.nodes:
        nodes = tuple(replace(n, ready=False) if n is lost else n for n in settled.nodes)
        after = plan(replace(settled, nodes=nodes))
        for key, route in first.routes.items():
            if route.next_hops[0] != lost.ip and key in after.routes:
                assert after.routes[key].next_hops == route.next_hops


# --- incremental ----------------------------------------------------------------


@given(snapshots(), snapshots(), st.data())
def test_replan_services_equals_full_plan(
    s: Snapshot, other: Snapshot, data: st.DataObject
) -> None:
    s, before = _converged(s)
    settled = with_decisions(s, before)
    # Change some Services: drop some, add or alter others (taken from another snapshot).
    mine = {x.key: x for x in settled.services}
    theirs = {x.key: x for x in other.services}
    changed = data.draw(
        st.sets(
            st.sampled_from(sorted(mine.keys() | theirs.keys())) if mine or theirs else st.nothing()
        )
    )
    services = {k: v for k, v in mine.items() if k not in changed}
    services.update({k: theirs[k] for k in changed if k in theirs and data.draw(st.booleans())})
    after = replace(settled, services=tuple(services.values()))
    incremental = replan_services(before, after, changed)
    assert incremental == plan(after)
    _check_routes(after, incremental)
