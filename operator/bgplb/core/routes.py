"""Routes: one /32 per VIP, next hops on the load-balancer nodes."""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network

from bgplb.core.attributes import NONE, Attributes
from bgplb.core.pools import Pool
from bgplb.core.snapshot import Drain, Node, Service, ServiceKey

ROUTE_NAME_PREFIX = "default-"
CONTROL_PLANE_ROUTE = "control-plane-vip"


@dataclass(frozen=True, slots=True)
class Route:
    prefix: IPv4Network
    next_hops: tuple[IPv4Address, ...]
    """Sorted. Shared between routes where equal: with ADD-PATH most routes have the same."""
    service: ServiceKey | None = None
    attributes: Attributes = NONE
    draining: tuple[IPv4Address, ...] = ()
    """Next hops leaving gracefully (announced with GRACEFUL_SHUTDOWN, worst MED)."""
    aggregation_length: int = 32
    """Announced as the /N block holding `prefix` (its pool's; 32 for Local Services)."""
    peers: tuple[str, ...] | None = None
    """The data-plane BGPPeers that announce it (None: every one)."""


@dataclass(frozen=True)
class RoutePlan:
    routes: Mapping[ServiceKey, Route]
    problems: Mapping[ServiceKey, str]


def load_balancer_nodes(nodes: Iterable[Node], selector: Mapping[str, str]) -> list[Node]:
    """Ready nodes the selector picks, by IP: the candidates for next hops. Drained
    nodes are not, unless every candidate is draining or drained: then they all stay,
    draining — a cordon of every node must not withdraw every VIP."""
    wanted = selector.items()
    picked = sorted(
        (n for n in nodes if n.ready and wanted <= n.labels.items()), key=lambda n: n.ip
    )
    if any(n.drain is Drain.ACTIVE for n in picked):
        return [n for n in picked if n.drain is not Drain.DRAINED]
    return [n if n.drain is Drain.DRAINING else replace(n, drain=Drain.DRAINING) for n in picked]


def _eligible(
    svc: Service,
    all_hops: tuple[IPv4Address, ...],
    by_name: Mapping[str, IPv4Address],
    withdraw_without_endpoints: bool,
) -> tuple[IPv4Address, ...] | str:
    """The next hops `svc` may have (`all_hops` itself when it may have all), or why
    it is not advertised."""
    if withdraw_without_endpoints and svc.ready_endpoints == 0:
        return "no ready endpoint: VIP kept, not advertised until one is ready"
    if svc.local_traffic:
        hops = tuple(ip for name, ip in by_name.items() if name in svc.endpoint_nodes)
        if not hops:
            return (
                "externalTrafficPolicy is Local and no ready load-balancer node has a "
                "ready endpoint: not advertised"
            )
        return hops
    if not all_hops:
        return "no ready load-balancer node: not advertised"
    return all_hops


def plan_routes(
    services: Iterable[Service],
    vips: Mapping[ServiceKey, IPv4Address],
    *,
    lb_nodes: list[Node],
    add_path: bool,
    current: Mapping[ServiceKey, tuple[IPv4Address, ...]],
    load: Counter[IPv4Address],
    withdraw_without_endpoints: bool = False,
) -> RoutePlan:
    """Next hops per VIP. `load` counts VIPs per next hop of the Services not given here.

    With ADD-PATH every eligible node is a next hop. Without it each VIP gets one,
    kept where it is while that node stays eligible, else the least-loaded node, so
    VIPs spread evenly and only a lost node's VIPs move.
    """
    all_hops = tuple(n.ip for n in lb_nodes)
    by_name = {n.name: n.ip for n in lb_nodes}
    draining = frozenset(n.ip for n in lb_nodes if n.drain is Drain.DRAINING)
    # Without ADD-PATH a VIP's one next hop is an active node whenever there is one.
    active_hops = tuple(ip for ip in all_hops if ip not in draining) or all_hops
    routes: dict[ServiceKey, Route] = {}
    problems: dict[ServiceKey, str] = {}
    pending: list[tuple[Service, tuple[IPv4Address, ...]]] = []
    shared: dict[IPv4Address, tuple[IPv4Address, ...]] = {}
    """VIP → the next hops of the first of its Services routed."""

    for svc in sorted(services, key=lambda s: s.key):
        vip = vips.get(svc.key)
        if vip is None:
            continue
        hops = _eligible(svc, all_hops, by_name, withdraw_without_endpoints)
        if isinstance(hops, str):
            problems[svc.key] = hops
            continue
        prefix = IPv4Network(vip)
        if vip in shared:  # Services sharing a VIP share its next hops: one route
            routes[svc.key] = Route(prefix, shared[vip], svc.key)
            continue
        if add_path:
            routes[svc.key] = Route(prefix, hops, svc.key)
            shared[vip] = hops
            continue
        now = current.get(svc.key, ())
        usable = (tuple(ip for ip in hops if ip not in draining) or hops) if draining else hops
        if len(now) == 1 and now[0] in usable:
            routes[svc.key] = Route(prefix, now, svc.key)
            load[now[0]] += 1
            shared[vip] = now
        else:
            pending.append((svc, usable))

    # Least loaded first, ties by IP. A lazy heap: loads only grow, so an entry is
    # never above its node's load; a stale top is refreshed until the top is exact,
    # and then it is the minimum. Each pick is O(log nodes) for 10,000s of VIPs.
    heap = [(load[ip], ip) for ip in active_hops]
    heapq.heapify(heap)
    for svc, hops in pending:
        vip = vips[svc.key]
        if vip in shared:
            routes[svc.key] = Route(IPv4Network(vip), shared[vip], svc.key)
            continue
        if hops == active_hops:
            while heap[0][0] != load[heap[0][1]]:
                heapq.heapreplace(heap, (load[heap[0][1]], heap[0][1]))
            chosen = heap[0][1]
        else:
            chosen = min(hops, key=lambda ip: (load[ip], ip))
        load[chosen] += 1
        routes[svc.key] = Route(IPv4Network(vip), (chosen,), svc.key)
        shared[vip] = (chosen,)
    return RoutePlan(routes=_mark_draining(routes, draining), problems=problems)


def _mark_draining(
    routes: dict[ServiceKey, Route], draining: frozenset[IPv4Address]
) -> dict[ServiceKey, Route]:
    if not draining:  # the usual case: no pass over every route's 500 next hops
        return routes
    for key, route in routes.items():
        if leaving := tuple(ip for ip in route.next_hops if ip in draining):
            routes[key] = replace(route, draining=leaving)
    return routes


def with_attributes(
    routes: Mapping[ServiceKey, Route],
    services: Iterable[Service],
    pools: Iterable[Pool],
    peers: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[ServiceKey, Route]:
    """Each route with what its UPDATE carries: its pool's attributes and aggregation,
    and the communities of every Service on its VIP (a shared VIP is one path, so its
    Services' communities add up: core/attributes.py). A Local Service is never
    aggregated: the block's next hops would include nodes without its endpoints."""
    by_key = {s.key: s for s in services}
    ordered = sorted(pools, key=lambda p: p.order)
    announcers = {p.name: p.announced_by(peers or {}) for p in ordered}
    pool_of: dict[IPv4Network, Pool | None] = {}
    per_vip: dict[IPv4Network, Attributes] = {}
    local: set[IPv4Network] = set()
    for key, route in routes.items():
        svc = by_key.get(key)
        if route.prefix not in pool_of:
            address = int(route.prefix.network_address)
            pool_of[route.prefix] = next((p for p in ordered if address in p), None)
            pool = pool_of[route.prefix]
            per_vip[route.prefix] = pool.attributes if pool else NONE
        if svc is not None:
            if svc.attributes != NONE:
                per_vip[route.prefix] = per_vip[route.prefix].with_(svc.attributes)
            if svc.local_traffic:
                local.add(route.prefix)
    out = {}
    for key, route in routes.items():
        pool = pool_of[route.prefix]
        length = 32 if pool is None or route.prefix in local else pool.aggregation_length
        attributes = per_vip[route.prefix]
        by = announcers[pool.name] if pool else None
        if (route.attributes, route.aggregation_length, route.peers) == (attributes, length, by):
            out[key] = route
        else:
            out[key] = replace(route, attributes=attributes, aggregation_length=length, peers=by)
    return out


def route_names(keys: Iterable[ServiceKey]) -> dict[ServiceKey, str]:
    """BGPAdvertisedRoute names as in the seed: `default-<namespace>-<name>`.

    'a-b/c' and 'a/b-c' would share a name; the first key in order keeps the plain
    one and the others get a short hash, so names are unique and deterministic.
    """
    by_name: dict[str, list[ServiceKey]] = {}
    for key in sorted(keys):
        by_name.setdefault(ROUTE_NAME_PREFIX + key.replace("/", "-"), []).append(key)
    names: dict[ServiceKey, str] = {}
    for name, owners in by_name.items():
        names[owners[0]] = name
        for key in owners[1:]:
            names[key] = f"{name}-{hashlib.blake2b(key.encode(), digest_size=4).hexdigest()}"
    return names
