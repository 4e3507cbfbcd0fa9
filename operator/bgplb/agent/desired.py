"""What one node's service speaker and interfaces should hold: pure, from the API
objects.

The seed keeps control-plane and service sessions apart: the agent's speaker peers
from floating IPs and advertises Service VIPs; control-plane sessions (from the
node's own IP, for the control-plane VIP) belong to the bgpadvertiser static Pod
(bgplb.static_pod), and the agent only reports their state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

from bgplb.agent.bfd import Timers
from bgplb.agent.speaker.model import PathConfig, PeerConfig, SpeakerConfig, path_identifier
from bgplb.api import BGPAdvertisedRouteSpec, BGPSessionSpec
from bgplb.core.attributes import DRAINING, of_route

ADD_PATH_SEND_MAX = 255
SecretKey = tuple[str, str]
"""(Secret name, key) of a session password."""


@dataclass(frozen=True)
class NodeDesired:
    """Everything the agent of one node acts on."""

    service: SpeakerConfig
    floating_ips: frozenset[IPv4Address]
    sessions: Mapping[str, BGPSessionSpec]
    """This node's sessions by name, for status reports."""
    missing_passwords: Mapping[str, SecretKey]
    """Sessions left out because their password Secret could not be read."""
    refused_routes: Mapping[str, str] = field(default_factory=dict)
    """Prefix → why the agent will not advertise it (not a /32 in a pool)."""
    bfd: Mapping[tuple[IPv4Address, IPv4Address], Timers] = field(default_factory=dict)
    """(local address, peer) → BFD timers, for the service sessions that ask for BFD."""


def _peer(name: str, spec: BGPSessionSpec, password: str) -> PeerConfig:
    gr = spec.graceful_restart
    return PeerConfig(
        address=spec.peer_ip,
        peer_asn=spec.peer_asn,
        local_asn=spec.local_asn,
        local_address=spec.local_ip,
        multihop_ttl=spec.ebgp_multihop_ttl,
        hold_time=spec.hold_time_seconds,
        keepalive=spec.keepalive_time_seconds,
        connect_retry=spec.connect_retry_seconds,
        password=password,
        graceful_restart=bool(gr and gr.enabled),
        restart_time=gr.restart_time_seconds if gr else 120,
        add_path_send_max=ADD_PATH_SEND_MAX if spec.add_path else 0,
        description=name,
    )


def denied(
    routes: Iterable[BGPAdvertisedRouteSpec], sessions: Mapping[str, BGPSessionSpec]
) -> dict[IPv4Network, frozenset[IPv4Address]]:
    """Per announced prefix, the neighbours of these sessions that must not get it: those
    of BGPPeers its route does not name. A prefix several routes announce (a shared VIP,
    an aggregate) goes to every peer any of them names."""
    by_peer: dict[str, set[IPv4Address]] = {}
    for spec in sessions.values():
        by_peer.setdefault(spec.peer, set()).add(spec.peer_ip)
    every = frozenset().union(*by_peer.values()) if by_peer else frozenset()
    out: dict[tuple[int, int], tuple[IPv4Network, frozenset[IPv4Address]]] = {}
    for route in routes:
        prefix = announced(route)
        if route.peers is None:
            deny: frozenset[IPv4Address] = frozenset()
        else:
            allowed = set().union(*(by_peer.get(p, set()) for p in route.peers))
            deny = every - allowed
        key = _key(prefix)  # integers: cheaper to hash than the network (per route)
        out[key] = (prefix, out[key][1] & deny if key in out else deny)
    return {prefix: deny for prefix, deny in out.values() if deny}


def _speaker(
    sessions: Mapping[str, BGPSessionSpec],
    passwords: Mapping[SecretKey, str],
    router_id: IPv4Address,
    paths: frozenset[PathConfig],
    missing: dict[str, SecretKey],
    *,
    deny: Mapping[IPv4Network, frozenset[IPv4Address]],
) -> SpeakerConfig:
    peers: dict[IPv4Address, PeerConfig] = {}
    for name, spec in sorted(sessions.items()):
        password = ""
        if (ref := spec.password_secret_ref) is not None:
            key = (ref.name, ref.key)
            if key not in passwords:
                missing[name] = key
                continue
            password = passwords[key]
        # One neighbour per peer address per speaker; the planner never asks for two.
        peers.setdefault(spec.peer_ip, _peer(name, spec, password))
    # The speaker's own ASN: the one its sessions use (per-peer local ASNs still apply).
    asns = Counter(s.local_asn for s in sessions.values())
    asn = asns.most_common(1)[0][0] if asns else 0
    if not peers:
        return SpeakerConfig(asn, router_id, peers)
    return SpeakerConfig(asn, router_id, peers, paths, deny)


def bfd_sessions(
    sessions: Mapping[str, BGPSessionSpec], speaker: SpeakerConfig
) -> dict[tuple[IPv4Address, IPv4Address], Timers]:
    """BFD for each of this node's sessions whose peer asks for it: the service
    speaker's, and the control-plane ones (the static Pod's gobgpd runs those; BFD
    for them comes from the speaker Pod like the rest)."""
    out = {}
    for spec in sessions.values():
        if spec.bfd is None:
            continue
        if spec.type == "Service":
            peer = speaker.peers.get(spec.peer_ip)
            if peer is None or peer.local_address != spec.local_ip:
                continue  # left out (no password), or another session holds the neighbour
        out[(spec.local_ip, spec.peer_ip)] = Timers(
            spec.bfd.transmit_interval_milliseconds * 1000,
            spec.bfd.receive_interval_milliseconds * 1000,
            spec.bfd.detect_multiplier,
        )
    return out


def service_paths(
    routes: Iterable[BGPAdvertisedRouteSpec], add_path: bool
) -> frozenset[PathConfig]:
    """One path per next hop with ADD-PATH (distinct identifiers), else one per prefix,
    with the route's attributes. Routes of Services sharing a VIP are one path: their
    attributes combine (core/attributes.py), whatever order they are read in."""
    # Keyed by integers: hashing ipaddress objects was most of this at 1,000 routes.
    paths: dict[tuple[int, int, int, int], PathConfig] = {}
    for route in routes:
        if route.service is None or not route.next_hops:
            continue
        attributes = of_route(
            route.communities, route.large_communities, route.as_path_prepend, route.metric
        )
        hops = sorted(route.next_hops) if add_path else [min(route.next_hops)]
        leaving = route.draining_next_hops or ()
        prefix = announced(route)
        net = _key(prefix)
        for hop in hops:
            identifier = path_identifier(hop) if add_path else 0
            key = (*net, int(hop), identifier)
            own = attributes.with_(DRAINING) if hop in leaving else attributes
            seen = paths.get(key)
            merged = own if seen is None else seen.attributes.with_(own)
            paths[key] = PathConfig(prefix, hop, identifier, attributes=merged)
    if not add_path:  # one path per prefix: VIPs of one aggregate may differ in next hop
        first: dict[tuple[int, int], PathConfig] = {}
        for key, path in sorted(paths.items()):
            kept = first.get(key[:2])
            both = path.attributes if kept is None else kept.attributes.with_(path.attributes)
            first[key[:2]] = replace(kept or path, attributes=both)
        return frozenset(first.values())
    return frozenset(paths.values())


def _key(prefix: IPv4Network) -> tuple[int, int]:
    return int(prefix.network_address), prefix.prefixlen


def announced(route: BGPAdvertisedRouteSpec) -> IPv4Network:
    """What goes on the wire for a route: its prefix, or the block holding it."""
    length = route.aggregation_length
    if not length or length >= route.prefix.prefixlen:
        return route.prefix  # the common case, without building a network (per route)
    return route.prefix.supernet(new_prefix=length)


def advertisable(
    routes: Iterable[BGPAdvertisedRouteSpec], pools: tuple[tuple[int, int], ...] | None
) -> tuple[list[BGPAdvertisedRouteSpec], dict[str, str]]:
    """The routes this agent may advertise, and why each other is refused: only a /32
    inside an address pool (`pools` None: not known, a desired file without a
    BGPLoadBalancer; only the /32 rule). A route object written by mistake or by a
    hand other than the controller's must not announce 0.0.0.0/0 to the fabric."""
    kept, refused = [], {}
    for route in routes:
        prefix = route.prefix
        address = int(prefix.network_address)
        if prefix.prefixlen != 32:
            refused[str(prefix)] = f"{prefix}: only /32 VIPs are advertised"
        elif pools is not None and not any(a <= address <= b for a, b in pools):
            refused[str(prefix)] = f"{prefix}: not in any address pool of the BGPLoadBalancer"
        elif pools is not None and not _inside(announced(route), pools):
            refused[str(prefix)] = (
                f"{prefix}: its aggregate {announced(route)} reaches outside the address pools"
            )
        else:
            kept.append(route)
    return kept, refused


def _inside(block: IPv4Network, pools: tuple[tuple[int, int], ...]) -> bool:
    first, last = int(block.network_address), int(block.broadcast_address)
    return any(a <= first and last <= b for a, b in pools)


def node_desired(
    node: str,
    node_ip: IPv4Address,
    *,
    sessions: Mapping[str, BGPSessionSpec],
    routes: Iterable[BGPAdvertisedRouteSpec],
    floating_ips: Iterable[IPv4Address],
    passwords: Mapping[SecretKey, str],
    pools: tuple[tuple[int, int], ...] | None = None,
) -> NodeDesired:
    """This node's service sessions and their paths; every session of the node (the
    control-plane ones included) for status reports."""
    mine = {k: v for k, v in sessions.items() if v.node_name == node}
    service = {k: v for k, v in mine.items() if v.type == "Service"}
    # A node with no Service session (a worker) advertises none: every route is
    # read past, not planned (each agent reads them all, on every change).
    route_list, refused = advertisable(
        (r for r in routes if r.service is not None and r.next_hops) if service else (), pools
    )
    add_path = any(s.add_path for s in service.values())
    missing: dict[str, SecretKey] = {}
    paths = service_paths(route_list, add_path)
    deny = denied(route_list, service)
    speaker = _speaker(service, passwords, node_ip, paths, missing, deny=deny)
    return NodeDesired(
        service=speaker,
        floating_ips=frozenset(floating_ips),
        sessions=mine,
        missing_passwords=missing,
        refused_routes=refused,
        bfd=bfd_sessions(mine, speaker),
    )
