"""plan(snapshot) -> DesiredState: every decision of the operator, as a pure function.

`replan_services` is the same decision for a few changed Services on top of a
previous plan; for a snapshot carrying that plan's decisions it returns exactly
what `plan` would (a property the tests check), in a fraction of the time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

from bgplb.api import BGPLoadBalancerSpec, BGPSessionSpec
from bgplb.core.floating import Placement, hand_over, place_floating_ips
from bgplb.core.local_asn import local_asn_of
from bgplb.core.pools import Pool
from bgplb.core.routes import Route, load_balancer_nodes, plan_routes, with_attributes
from bgplb.core.sessions import (
    data_plane_peers,
    plan_control_plane_sessions,
    plan_service_sessions,
)
from bgplb.core.snapshot import Service, ServiceKey, Snapshot
from bgplb.core.vips import allocate_vips


@dataclass(frozen=True)
class DesiredState:
    floating_ips: Placement = field(default_factory=lambda: Placement({}, {}))
    sessions: Mapping[str, BGPSessionSpec] = field(default_factory=dict)
    """Session name → spec, service and control-plane sessions together."""
    session_shortfalls: Mapping[str, str] = field(default_factory=dict)
    """Peer → why it has fewer sessions than asked for."""
    vips: Mapping[ServiceKey, IPv4Address] = field(default_factory=dict)
    routes: Mapping[ServiceKey, Route] = field(default_factory=dict)
    service_problems: Mapping[ServiceKey, str] = field(default_factory=dict)
    """Service → why it has no VIP, or its VIP is not advertised."""
    control_plane_route: Route | None = None
    problems: tuple[str, ...] = ()
    """Cluster-wide: missing or unusable configuration."""
    peer_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """The data-plane peers' labels by name: what pools' peerSelectors choose from."""


def _our_services(snapshot: Snapshot) -> list[Service]:
    mine = snapshot.load_balancer_class
    return [s for s in snapshot.services if s.load_balancer_class in (None, mine)]


def _pools(lb: BGPLoadBalancerSpec) -> dict[str, Pool]:
    return {p.name: Pool.from_api(p) for p in lb.address_pools}


def plan(snapshot: Snapshot) -> DesiredState:
    lb = snapshot.load_balancer
    if lb is None:
        return DesiredState(problems=("BGPLoadBalancer 'default' not found: nothing to do",))
    local_asn = local_asn_of(lb, snapshot.peers)
    if isinstance(local_asn, str):  # the controller holds its last plan before this
        return DesiredState(problems=(f"BGPLoadBalancer 'default': spec.localASN: {local_asn}",))
    problems: list[str] = []

    floating_ips = snapshot.gateway.floating_ips if snapshot.gateway else []
    if snapshot.gateway is None:
        problems.append("NetworkGatewayGroup 'default' not found: no service sessions")
    in_use = frozenset().union(*snapshot.session_floating_ips.values())
    placement = hand_over(
        place_floating_ips(floating_ips, snapshot.nodes, snapshot.floating_ip_holders, in_use),
        snapshot.nodes,
        snapshot.floating_ip_holders,
        snapshot.floating_ip_releasing,
        snapshot.placement_epoch,
    )

    peers = data_plane_peers(lb, local_asn, snapshot.peers, len(set(floating_ips)))
    if not peers:
        problems.append(
            "no data-plane peer: the peerSelector matches no BGPPeer"
            if lb.peer_selector is not None
            else "no data-plane peer: no peerSelector and no control-plane peers"
        )
    service_sessions = plan_service_sessions(
        peers, placement.holders, snapshot.session_floating_ips, lb.add_path
    )
    cp_sessions = plan_control_plane_sessions(lb, local_asn, snapshot.nodes)
    sessions = dict(cp_sessions.sessions)
    shortfalls = {**service_sessions.shortfalls, **cp_sessions.shortfalls}
    for name, spec in service_sessions.sessions.items():
        if name in sessions:
            shortfalls[spec.peer] = f"session name {name} is taken by a control-plane session"
        else:
            sessions[name] = spec

    services = _our_services(snapshot)
    vip_plan = allocate_vips(services, _pools(lb), {})
    lb_nodes = load_balancer_nodes(snapshot.nodes, lb.load_balancer_node_selector)
    route_plan = plan_routes(
        services,
        vip_plan.vips,
        lb_nodes=lb_nodes,
        add_path=lb.add_path,
        current=snapshot.route_next_hops,
        load=Counter(),
        withdraw_without_endpoints=lb.withdraw_without_endpoints,
    )
    pools = _pools(lb)
    labels = {p.name: p.labels for p in snapshot.peers}
    peer_labels = {name: labels.get(name, {}) for name, _ in peers}
    routes = with_attributes(route_plan.routes, services, pools.values(), peer_labels)
    return DesiredState(
        floating_ips=placement,
        sessions=dict(sorted(sessions.items())),
        session_shortfalls=shortfalls,
        vips=vip_plan.vips,
        routes=routes,
        service_problems=_merge(
            vip_plan.problems,
            route_plan.problems,
            _attribute_problems(services),
            _unannounced(routes),
        ),
        control_plane_route=_control_plane_route(lb, sessions.values()),
        problems=tuple(problems),
        peer_labels=peer_labels,
    )


def _unannounced(routes: Mapping[ServiceKey, Route]) -> dict[ServiceKey, str]:
    return {
        key: "its address pool's peerSelector selects no data-plane BGPPeer: announced to none"
        for key, route in routes.items()
        if route.peers == ()
    }


def _attribute_problems(services: Iterable[Service]) -> dict[ServiceKey, str]:
    return {
        s.key: "left out: " + "; ".join(s.attribute_errors) for s in services if s.attribute_errors
    }


def _merge(*problems: Mapping[ServiceKey, str]) -> dict[ServiceKey, str]:
    """One message per Service: a kept VIP can have a failed request and no next hop."""
    out: dict[ServiceKey, str] = {}
    for found in problems:
        for key, message in found.items():
            out[key] = f"{out[key]}; {message}" if key in out else message
    return out


def _control_plane_route(
    lb: BGPLoadBalancerSpec, sessions: Iterable[BGPSessionSpec]
) -> Route | None:
    """The control-plane VIP, via every control-plane node that has a session for it.

    Each node's agent advertises it only while its own kube-apiserver is ready; this
    route lists where it may come from.
    """
    if lb.control_plane is None or lb.control_plane.vip is None:
        return None
    hops = sorted({s.local_ip for s in sessions if s.type == "ControlPlane"})
    return Route(IPv4Network(lb.control_plane.vip), tuple(hops))


def replan_services(
    previous: DesiredState, snapshot: Snapshot, changed: Iterable[ServiceKey]
) -> DesiredState:
    """Re-decide only the changed Services (and those that had problems).

    Valid when nothing but Services changed since `previous` was planned from this
    snapshot's predecessor; anything else (nodes, leases, configuration) needs `plan`.
    """
    lb = snapshot.load_balancer
    if lb is None:
        return plan(snapshot)
    ours = _our_services(snapshot)
    redo = set(changed) | set(previous.service_problems)
    # A changed Service claiming an address another holds competes with it afresh,
    # as it would in a full plan.
    holders: dict[IPv4Address, set[ServiceKey]] = {}
    for key, ip in previous.vips.items():
        holders.setdefault(ip, set()).add(key)
    for svc in ours:
        if svc.key in changed and svc.current_ip in holders:
            redo |= holders[svc.current_ip]
    services = [s for s in ours if s.key in redo]

    vips = {k: v for k, v in previous.vips.items() if k not in redo}
    routes = {k: v for k, v in previous.routes.items() if k not in redo}
    problems = {k: v for k, v in previous.service_problems.items() if k not in redo}

    by_key = {s.key: s for s in ours}
    held: dict[int, list[Service]] = {}
    for key, ip in vips.items():
        if key in by_key:
            held.setdefault(int(ip), []).append(by_key[key])
    vip_plan = allocate_vips(services, _pools(lb), held)
    load: Counter[IPv4Address] = Counter()
    if not lb.add_path:
        load.update(hop for route in routes.values() for hop in route.next_hops)
    lb_nodes = load_balancer_nodes(snapshot.nodes, lb.load_balancer_node_selector)
    route_plan = plan_routes(
        services,
        vip_plan.vips,
        lb_nodes=lb_nodes,
        add_path=lb.add_path,
        current=snapshot.route_next_hops,
        load=load,
        withdraw_without_endpoints=lb.withdraw_without_endpoints,
    )
    vips.update(vip_plan.vips)
    routes.update(route_plan.routes)
    # A changed Service's communities reach every route of its VIP (sharing): those
    # routes are decided again, the rest stand as planned.
    vips_redone = {r[k].prefix for r in (routes, previous.routes) for k in redo if k in r}
    sharing = {k: r for k, r in routes.items() if r.prefix in vips_redone}
    routes.update(
        with_attributes(
            sharing,
            [by_key[k] for k in sharing if k in by_key],
            _pools(lb).values(),
            previous.peer_labels,
        )
    )
    problems.update(
        _merge(
            vip_plan.problems,
            route_plan.problems,
            _attribute_problems(services),
            _unannounced({k: routes[k] for k in redo if k in routes}),
        )
    )
    return replace(previous, vips=vips, routes=routes, service_problems=problems)


def with_decisions(snapshot: Snapshot, desired: DesiredState) -> Snapshot:
    """The snapshot as it reads once `desired` is applied: its decisions become current.

    The controller uses it between writing a plan and seeing the writes come back;
    the tests use it to check that plans are fixpoints.
    """
    session_ips: dict[str, set[IPv4Address]] = {}
    for spec in desired.sessions.values():
        if spec.floating_ip is not None:
            session_ips.setdefault(spec.peer, set()).add(spec.floating_ip)
    services = tuple(replace(s, current_ip=desired.vips.get(s.key)) for s in snapshot.services)
    return replace(
        snapshot,
        services=services,
        floating_ip_holders=dict(desired.floating_ips.holders),
        floating_ip_releasing=dict(desired.floating_ips.releasing),
        placement_epoch=desired.floating_ips.epoch,
        session_floating_ips={k: frozenset(v) for k, v in session_ips.items()},
        route_next_hops={k: r.next_hops for k, r in desired.routes.items()},
    )
