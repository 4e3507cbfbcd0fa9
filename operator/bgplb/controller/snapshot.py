"""Cluster objects (as the API returns them) → the planner's Snapshot. Pure.

Node liveness is the node agent's Lease, judged by when the controller last saw it
change (its own monotonic clock), not by the timestamps inside it: clocks of nodes
and controller need not agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from pydantic import ValidationError

from bgplb.api import (
    BGPAdvertisedRoute,
    BGPLoadBalancer,
    BGPPeer,
    BGPSession,
    NetworkGatewayGroup,
)
from bgplb.api.common import Resource, read
from bgplb.api.contract import (
    ADDRESSES_ANNOTATION,
    HOLDING_ANNOTATION,
    POOL_ANNOTATION,
    SINGLETON_NAME,
    WITNESS_ANNOTATION,
    current_vip,
    lease_name,
    parse_addresses,
    parse_holding,
    ports_of,
    requested_vip,
    selector_of,
    sharing_key,
)
from bgplb.core.attributes import from_annotations
from bgplb.core.local_asn import local_asn_of
from bgplb.core.plan import DesiredState
from bgplb.core.routes import Route
from bgplb.core.snapshot import Drain, Node, Peer, Service, ServiceKey, Snapshot
from bgplb.core.validate import Config, check_against, check_object

JSON = Mapping[str, Any]


@dataclass
class ClusterState:
    """What the controller's watches hold, by kind (raw objects)."""

    namespace: str
    load_balancers: dict[str, JSON] = field(default_factory=dict)
    gateways: dict[str, JSON] = field(default_factory=dict)
    peers: dict[str, JSON] = field(default_factory=dict)
    sessions: dict[str, JSON] = field(default_factory=dict)
    routes: dict[str, JSON] = field(default_factory=dict)
    nodes: dict[str, JSON] = field(default_factory=dict)
    leases: dict[str, JSON] = field(default_factory=dict)
    lease_seen: dict[str, float] = field(default_factory=dict)
    """Lease name → monotonic time the controller last saw it renewed."""
    drain_seen: dict[str, float] = field(default_factory=dict)
    """Node name → monotonic time the controller first saw it cordoned or excluded
    (after a restart: first seen again, so a drain only ever lasts longer)."""
    services: dict[ServiceKey, JSON] = field(default_factory=dict)
    endpoint_slices: dict[str, JSON] = field(default_factory=dict)
    """'namespace/name' of the slice → slice."""
    unclaimed_slices: dict[str, tuple[float, JSON]] = field(default_factory=dict)
    """Slices of Services not indexed (yet) → (monotonic time seen, slice), oldest
    first, kept for a while: a slice can arrive before its Service (another watch)."""
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    """Namespace → its labels (pools may select namespaces by label)."""


def node_inputs(node: JSON) -> JSON:
    """What planning reads of a Node (`node_from`, `draining`): its labels, its cordon
    and its addresses. Kept instead of the whole object, and compared to tell a change
    from a kubelet's status heartbeat (every few seconds per node), which is none."""
    meta, spec = node["metadata"], node.get("spec") or {}
    return {
        "metadata": {"name": meta["name"], "labels": dict(meta.get("labels") or {})},
        "spec": {"unschedulable": bool(spec.get("unschedulable"))},
        "status": {"addresses": list((node.get("status") or {}).get("addresses") or [])},
    }


def _internal_ip(node: JSON) -> IPv4Address | None:
    for address in node.get("status", {}).get("addresses", []):
        if address.get("type") == "InternalIP":
            try:
                return IPv4Address(address["address"])
            except ValueError:
                continue
    return None


def drain_of(state: ClusterState, name: str, now: float, seconds: float) -> Drain:
    since = state.drain_seen.get(name)
    if since is None:
        return Drain.ACTIVE
    return Drain.DRAINED if now - since >= seconds else Drain.DRAINING


def drain_deadline(state: ClusterState, now: float, seconds: float) -> float | None:
    """When the next draining node is due to be withdrawn (None: none draining)."""
    due = [since + seconds for since in state.drain_seen.values() if since + seconds > now]
    return min(due, default=None)


def node_from(
    node: JSON, lease: JSON | None, live: bool, drain: Drain = Drain.ACTIVE
) -> Node | None:
    name = node["metadata"]["name"]
    internal = _internal_ip(node)
    addresses: list[IPv4Interface] = []
    annotations = (lease or {}).get("metadata", {}).get("annotations") or {}
    holding = parse_holding(annotations.get(HOLDING_ANNOTATION))
    if lease is not None:
        addresses += parse_addresses(annotations.get(ADDRESSES_ANNOTATION))
    if internal is not None:
        # InternalIP first: it is the node's next hop and control-plane source address.
        addresses.sort(key=lambda a: a.ip != internal)
        if not addresses or addresses[0].ip != internal:
            addresses.insert(0, IPv4Interface(internal))
    if not addresses:
        return None
    return Node(
        name,
        tuple(addresses),
        dict(node["metadata"].get("labels", {})),
        live,
        holding=holding[1] if holding else frozenset(),
        holding_epoch=holding[0] if holding else None,
        drain=drain,
    )


def _service(
    svc: JSON,
    endpoint_nodes: frozenset[str],
    ready_endpoints: int | None,
    namespace_labels: Mapping[str, str] | None = None,
) -> Service | None:
    spec, meta = svc.get("spec", {}), svc["metadata"]
    if spec.get("type") != "LoadBalancer":
        return None
    attributes, errors = from_annotations(meta.get("annotations") or {})
    return Service(
        namespace=meta["namespace"],
        name=meta["name"],
        load_balancer_class=spec.get("loadBalancerClass"),
        requested_ip=requested_vip(svc),
        pool=meta.get("annotations", {}).get(POOL_ANNOTATION),
        current_ip=current_vip(svc),
        local_traffic=spec.get("externalTrafficPolicy") == "Local",
        endpoint_nodes=endpoint_nodes,
        ready_endpoints=ready_endpoints,
        sharing_key=sharing_key(svc),
        ports=ports_of(svc),
        selector=selector_of(svc),
        labels=dict(meta.get("labels") or {}),
        namespace_labels=namespace_labels,
        attributes=attributes,
        attribute_errors=tuple(f"{field}: {why}" for field, why in errors),
    )


def endpoint_nodes(slices: Iterable[JSON]) -> dict[ServiceKey, frozenset[str]]:
    """Service → nodes with a ready endpoint of it."""
    return {k: frozenset(nodes) for k, (nodes, _) in _ready(slices).items()}


def ready_endpoints(slices: Iterable[JSON]) -> dict[ServiceKey, int]:
    """Service → how many ready endpoints it has (Services with no EndpointSlice read
    are absent: unknown, not none)."""
    return {k: count for k, (_, count) in _ready(slices).items()}


def _ready(slices: Iterable[JSON]) -> dict[ServiceKey, tuple[set[str], int]]:
    out: dict[ServiceKey, tuple[set[str], int]] = {}
    for s in slices:
        service = s["metadata"].get("labels", {}).get("kubernetes.io/service-name")
        if not service:
            continue
        key = f"{s['metadata']['namespace']}/{service}"
        nodes, count = out.get(key, (set(), 0))
        for endpoint in s.get("endpoints", []) or []:
            # An unknown readiness counts as ready (the EndpointSlice API's advice).
            if (endpoint.get("conditions") or {}).get("ready", True) in (True, None):
                count += 1
                if endpoint.get("nodeName"):
                    nodes.add(endpoint["nodeName"])
        out[key] = (nodes, count)
    return out


def _parse(cls: type[Any], obj: JSON | None, problems: list[str]) -> Any:
    if obj is None:
        return None
    try:
        return read(cls, obj)
    except ValidationError as e:
        problems.append(f"{obj.get('kind')} {obj['metadata'].get('name')} is invalid: {e}")
        return None


def lease_period(lease: JSON | None, floor: float) -> float:
    """How long a node's Lease keeps it live after the controller saw it renewed: the
    controller's own expiry, or longer when the agent asked for it — a stopping agent
    (a rollout) renews once with its restart grace so its successor can take over
    without the floating IPs moving meanwhile."""
    declared = ((lease or {}).get("spec") or {}).get("leaseDurationSeconds")
    return max(floor, float(declared)) if isinstance(declared, int | float) else floor


def lease_live(state: ClusterState, name: str, now: float, floor: float) -> bool:
    seen = state.lease_seen.get(name)
    return seen is not None and now - seen < lease_period(state.leases.get(name), floor)


def witnesses(state: ClusterState) -> dict[str, str]:
    """Node → its agent's witness address, from the Leases of existing Nodes."""
    found = {}
    for name in state.nodes:
        lease = state.leases.get(lease_name(name)) or {}
        address = ((lease.get("metadata") or {}).get("annotations") or {}).get(WITNESS_ANNOTATION)
        if address:
            found[name] = address
    return found


def observed_live(state: ClusterState, now: float, lease_expiry: float) -> frozenset[str]:
    """The nodes whose Leases are fresh."""
    return frozenset(
        name for name in state.nodes if lease_live(state, lease_name(name), now, lease_expiry)
    )


def _refused(res: Resource, config: Config, problems: list[str]) -> bool:
    errors = check_object(res) + check_against(res, config)
    problems += [f"{res.kind} {res.metadata.name}: {e}" for e in errors]
    return bool(errors)


def _nodes(state: ClusterState, live: frozenset[str], now: float, drain: float) -> list[Node]:
    nodes = []
    for name, raw in sorted(state.nodes.items()):
        lease = state.leases.get(lease_name(name))
        node = node_from(raw, lease, name in live, drain_of(state, name, now, drain))
        if node is not None:
            nodes.append(node)
    return nodes


def snapshot_from(
    state: ClusterState,
    now: float,
    lease_expiry: float,
    live: frozenset[str] | None = None,
) -> tuple[Snapshot, list[str]]:
    """The snapshot, and problems with objects that could not be read. `live`: the
    nodes to take for live (the disruption guard's verdict); None: fresh Leases."""
    if live is None:
        live = observed_live(state, now, lease_expiry)
    problems: list[str] = []
    lb = _parse(BGPLoadBalancer, state.load_balancers.get(SINGLETON_NAME), problems)
    ngg = _parse(NetworkGatewayGroup, state.gateways.get(SINGLETON_NAME), problems)
    # The webhook's gate, again: an object that got past it (written while the
    # webhook was down, or before it existed) is judged by the same rules. A BGPPeer
    # is checked against the ones before it by name, so of two that clash only the
    # later one is left out; a singleton that fails holds the last good plan.
    accepted: list[BGPPeer] = []
    for raw in (raw for _, raw in sorted(state.peers.items())):
        peer = _parse(BGPPeer, raw, problems)
        if peer is not None and not _refused(peer, Config(lb, ngg, accepted), problems):
            accepted.append(peer)
    if lb is not None and _refused(lb, Config(None, ngg, accepted), problems):
        lb = None
    if ngg is not None and _refused(ngg, Config(lb, None, accepted), problems):
        ngg = None
    peers = [Peer(p.metadata.name, p.metadata.labels, p.spec) for p in accepted]
    if lb is not None and lb.spec.local_asn is None:
        # Unresolvable: as a BGPLoadBalancer that does not parse (the last good plan
        # stays); resolved: the planner and the sessions see it as if written.
        asn = local_asn_of(lb.spec, peers)
        if isinstance(asn, str):
            problems.append(f"BGPLoadBalancer default: spec.localASN: {asn}")
            lb = None
        else:
            lb = lb.model_copy(update={"spec": lb.spec.model_copy(update={"local_asn": asn})})
    nodes = _nodes(state, live, now, lb.spec.drain_seconds if lb is not None else 0)
    ready = endpoint_nodes(state.endpoint_slices.values())
    counts = ready_endpoints(state.endpoint_slices.values())
    services = []
    for key, raw in sorted(state.services.items()):
        namespace = key.partition("/")[0]
        labels = state.namespace_labels.get(namespace)
        svc = _service(raw, ready.get(key, frozenset()), counts.get(key), labels)
        if svc is not None:
            services.append(svc)
    holders: dict[IPv4Address, str] = {}
    releasing: dict[IPv4Address, str] = {}
    if ngg is not None:
        for into, given in ((holders, ngg.status.floating_ips), (releasing, ngg.status.releasing)):
            for ip, node_name in given.items():
                try:
                    into[IPv4Address(ip)] = node_name
                except ValueError:
                    continue
    session_ips: dict[str, set[IPv4Address]] = {}
    for raw in state.sessions.values():
        spec = raw.get("spec", {})
        if spec.get("floatingIP") and spec.get("peer"):
            session_ips.setdefault(spec["peer"], set()).add(IPv4Address(spec["floatingIP"]))
    hops: dict[ServiceKey, tuple[IPv4Address, ...]] = {}
    for raw in state.routes.values():
        spec = raw.get("spec", {})
        ref = spec.get("service")
        if ref:
            key = f"{ref['namespace']}/{ref['name']}"
            hops[key] = tuple(sorted(IPv4Address(h) for h in spec.get("nextHops", [])))
    snapshot = Snapshot(
        load_balancer=lb.spec if lb else None,
        gateway=ngg.spec if ngg else None,
        peers=tuple(peers),
        nodes=tuple(nodes),
        services=tuple(services),
        floating_ip_holders=holders,
        floating_ip_releasing=releasing,
        placement_epoch=ngg.status.epoch if ngg else 0,
        session_floating_ips={k: frozenset(v) for k, v in session_ips.items()},
        route_next_hops=hops,
    )
    return snapshot, problems


def in_force(state: ClusterState) -> DesiredState:
    """The routes and sessions the cluster holds now, as a plan: what a controller
    that just started paces its first withdrawals against (it has made no plan yet,
    and a first plan from a cache that looks empty must not withdraw everything)."""
    routes: dict[ServiceKey, Route] = {}
    vips: dict[ServiceKey, IPv4Address] = {}
    for raw in state.routes.values():
        try:
            spec = read(BGPAdvertisedRoute, raw).spec
        except (ValidationError, KeyError):
            continue
        if spec.service is None:  # the control-plane route: never paced
            continue
        key = f"{spec.service.namespace}/{spec.service.name}"
        routes[key] = Route(spec.prefix, tuple(sorted(spec.next_hops)), key)
        vips[key] = spec.prefix.network_address
    sessions = {}
    for name, raw in state.sessions.items():
        try:
            sessions[name] = read(BGPSession, raw).spec
        except (ValidationError, KeyError):
            continue
    return DesiredState(sessions=sessions, vips=vips, routes=routes)


def observed_generations(state: ClusterState) -> tuple[object, ...]:
    """The configuration generations the statuses say the data plane reflects, in the
    shape of the controller's `_config_generations`: equal means nothing was asked
    for since the routes and sessions in force were planned."""

    def observed(raw: Mapping[str, Any] | None) -> object:
        if raw is None:
            return None
        return (raw.get("status") or {}).get("observedGeneration")

    return (
        observed(state.load_balancers.get(SINGLETON_NAME)),
        observed(state.gateways.get(SINGLETON_NAME)),
        tuple(sorted((n, observed(r)) for n, r in state.peers.items())),
    )
