"""The planner's input: everything it decides from, already read from the cluster.

Besides what users configured, a snapshot carries the operator's previous decisions
(who holds each floating IP, which floating IPs each peer's sessions use, each
Service's VIP and next hop). The planner keeps those whenever they are still valid,
which is what makes plans stable.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface

from bgplb.api import BGPLoadBalancerSpec, BGPPeerSpec, NetworkGatewayGroupSpec
from bgplb.api.contract import LOAD_BALANCER_CLASS
from bgplb.core.attributes import NONE, Attributes

ServiceKey = str
"""'namespace/name'."""


class Drain(enum.Enum):
    """Where a node is in leaving the next hops gracefully (core/routes.py)."""

    ACTIVE = "active"
    DRAINING = "draining"
    """Still a next hop, announced with GRACEFUL_SHUTDOWN and the worst MED: routers
    stop sending it new flows while the path stays up."""
    DRAINED = "drained"
    """Withdrawn: its drain period is over."""


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    addresses: tuple[IPv4Interface, ...]
    """The node's addresses with their prefix lengths, InternalIP first. Floating IPs
    the agent plumbed are not among them."""
    labels: Mapping[str, str] = field(default_factory=dict)
    ready: bool = True
    """Its agent's Lease is current (not Node Ready, which is tens of seconds late)."""
    holding: frozenset[IPv4Address] = frozenset()
    """Floating IPs its agent says (in its Lease) are plumbed on it."""
    holding_epoch: int | None = None
    """The placement epoch that `holding` reflects (None: the agent does not say)."""
    drain: Drain = Drain.ACTIVE

    @property
    def ip(self) -> IPv4Address:
        return self.addresses[0].ip


@dataclass(frozen=True, slots=True)
class Peer:
    name: str
    labels: Mapping[str, str]
    spec: BGPPeerSpec


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    load_balancer_class: str | None = None
    requested_ip: IPv4Address | None = None
    """spec.loadBalancerIP (or our annotation): the user wants exactly this VIP."""
    pool: str | None = None
    """Address pool the user asked for by annotation."""
    current_ip: IPv4Address | None = None
    """The VIP it has now (status.loadBalancer.ingress or the last plan)."""
    local_traffic: bool = False
    """externalTrafficPolicy: Local — only nodes with a ready endpoint may be next hops."""
    endpoint_nodes: frozenset[str] = frozenset()
    """Nodes with a ready endpoint of this Service."""
    ready_endpoints: int | None = None
    """How many ready endpoints it has anywhere; None: unknown (no EndpointSlice of it
    read), which never withdraws anything."""
    sharing_key: str | None = None
    """Services with the same key may share a VIP (SHARING_KEY_ANNOTATION)."""
    ports: frozenset[tuple[str, int]] = frozenset()
    """(protocol, port): what may not overlap on a shared VIP."""
    selector: tuple[tuple[str, str], ...] = ()
    """spec.selector, sorted: Local Services share a VIP only with the same Pods."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Its labels: an address pool may serve only some (serviceAllocation)."""
    namespace_labels: Mapping[str, str] | None = None
    """Its namespace's labels (None: not known): a pool may serve only some."""
    attributes: Attributes = NONE
    """Communities of its own (annotations), added to its pool's."""
    attribute_errors: tuple[str, ...] = ()
    """Why some of its annotated communities are left out."""

    @property
    def key(self) -> ServiceKey:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Snapshot:
    load_balancer: BGPLoadBalancerSpec | None
    gateway: NetworkGatewayGroupSpec | None
    peers: tuple[Peer, ...] = ()
    nodes: tuple[Node, ...] = ()
    services: tuple[Service, ...] = ()
    floating_ip_holders: Mapping[IPv4Address, str] = field(default_factory=dict)
    """Floating IP → node holding it now."""
    session_floating_ips: Mapping[str, frozenset[IPv4Address]] = field(default_factory=dict)
    """Peer name → floating IPs its sessions start from now."""
    floating_ip_releasing: Mapping[IPv4Address, str] = field(default_factory=dict)
    """Floating IP → the live node giving it up (a move in progress)."""
    placement_epoch: int = 0
    """Bumped with every release; see core/floating.py."""
    route_next_hops: Mapping[ServiceKey, tuple[IPv4Address, ...]] = field(default_factory=dict)
    """Service → next hops advertised now (used without ADD-PATH to keep each VIP put)."""
    load_balancer_class: str = LOAD_BALANCER_CLASS
