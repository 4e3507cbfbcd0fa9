"""BGPLoadBalancer: cluster-wide load-balancer settings and the data-plane peer selector."""

from __future__ import annotations

import ipaddress
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from bgplb.api.bgppeer import BFD
from bgplb.api.common import (
    ASN,
    ApiModel,
    Conditions,
    IPv4,
    Kind,
    PrinterColumn,
    Resource,
)
from bgplb.api.communities import Community, LargeCommunity

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
POOL_ENTRY_PATTERN = rf"^{_IPV4}(/([0-9]|[12][0-9]|3[0-2])|-{_IPV4})$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"


class PoolEntryError(ValueError):
    """A pool entry that is neither 'first-last' nor an IPv4 CIDR."""


def parse_pool_entry(entry: str) -> tuple[int, int]:
    """'a-b' or 'a.b.c.d/n' → inclusive (first, last) as integers."""
    if ":" in entry:
        raise PoolEntryError("IPv6 is not supported yet")
    if "-" in entry:
        first_text, _, last_text = entry.partition("-")
        try:
            first = ipaddress.IPv4Address(first_text.strip())
            last = ipaddress.IPv4Address(last_text.strip())
        except ValueError as e:
            raise PoolEntryError(f"{entry!r} is not a range 'first-last': {e}") from None
        if first > last:
            raise PoolEntryError(f"range {entry!r} ends before it starts")
        return int(first), int(last)
    try:
        net = ipaddress.IPv4Network(entry, strict=True)
    except ValueError as e:
        raise PoolEntryError(
            f"{entry!r} is not a range 'first-last' or an IPv4 CIDR: {e}"
        ) from None
    return int(net.network_address), int(net.broadcast_address)


def _check_entry(entry: str) -> str:
    parse_pool_entry(entry)
    return entry


def _as_int(address: str) -> str:
    """CEL for the integer value of a dotted-quad string expression."""
    octets = [f"int({address}.split('.')[{i}])" for i in range(4)]
    return f"{octets[0]} * 16777216 + {octets[1]} * 65536 + {octets[2]} * 256 + {octets[3]}"


# What _check_entry refuses beyond the pattern, in the CRD too: the API server then
# refuses at `kubectl apply` what the controller could not read
# (tests/integration/test_crd_agreement.py).
POOL_ENTRY_RULES = [
    {
        "rule": "!self.contains('/') || cidr(self) == cidr(self).masked()",
        "message": "a CIDR must have no host bits set (10.0.0.0/24, not 10.0.0.1/24)",
    },
    {
        "rule": "!self.contains('-') || "
        + _as_int("self.split('-')[0]")
        + " <= "
        + _as_int("self.split('-')[1]"),
        "message": "a range 'first-last' must not end before it starts",
    },
]

PoolEntry = Annotated[
    str,
    AfterValidator(_check_entry),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 31,
            "pattern": POOL_ENTRY_PATTERN,
            "x-kubernetes-validations": POOL_ENTRY_RULES,
        }
    ),
]


class Advertisement(ApiModel):
    """What a pool's VIPs are announced with (MetalLB's BGPAdvertisement, Cilium's
    CiliumBGPAdvertisement attributes). There is no localPreference: LOCAL_PREF is
    only exchanged inside an AS (iBGP, RFC 4271 5.1.5) and every session bgplb opens
    is eBGP, so no router would see it; to make the ToRs prefer or avoid these
    paths, use med or asPathPrepend."""

    communities: list[Community] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Standard communities, 'ASN:value' or a well-known name (no-export, "
        "no-advertise, no-export-subconfed, no-peer, blackhole, graceful-shutdown).",
    )
    large_communities: list[LargeCommunity] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Large communities (RFC 8092), 'ASN:value:value'.",
    )
    as_path_prepend: int = Field(
        0,
        ge=0,
        le=10,
        description="How many extra times the cluster's ASN is put on the AS path: "
        "routers outside prefer shorter paths, so a standby site can prepend.",
    )
    med: int | None = Field(
        None,
        ge=0,
        le=4_294_967_295,
        description="MULTI_EXIT_DISC: among paths from the same neighbouring AS a "
        "router prefers the lowest. Unset: not sent.",
    )
    peer_selector: dict[str, str] | None = Field(
        None,
        description="Only the data-plane BGPPeers with these labels announce the pool's "
        "VIPs (MetalLB's BGPAdvertisement peers, Cilium's advertisement per peer config); "
        "unset: every data-plane peer.",
    )
    aggregation_length: int = Field(
        32,
        ge=1,
        le=32,
        description="Announce each VIP as the /N block holding it instead of a /32 "
        "(MetalLB's aggregationLength): fewer routes on the routers, next hops the union "
        "of its VIPs'. The pool must be made of whole /N blocks. Services with "
        "externalTrafficPolicy Local are still announced as /32s: only their own nodes "
        "may receive their traffic.",
    )


class ServiceAllocation(ApiModel):
    """Which Services may have an address from a pool, and in what order pools are
    tried (MetalLB's IPAddressPool serviceAllocation)."""

    priority: int | None = Field(None, ge=0, le=1_000_000)
    """Pools with a lower number are tried first; pools without one come after them,
    in the order they are listed."""
    namespaces: list[Annotated[str, Field(max_length=63, pattern=DNS_LABEL)]] = Field(
        default_factory=list,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    """Only Services in these namespaces; empty: any namespace."""
    namespace_selector: dict[str, str] = Field(default_factory=dict)
    """Only Services in namespaces with all of these labels (MetalLB's
    namespaceSelectors, as matchLabels); empty: any namespace."""
    service_selector: dict[str, str] = Field(default_factory=dict)
    """Only Services with all of these labels; empty: any Service."""


class AddressPool(ApiModel):
    """Addresses Service VIPs are allocated from."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    """The pool's name (a Service asks for it by annotation)."""
    addresses: list[PoolEntry] = Field(
        min_length=1,
        max_length=256,
        description="Ranges 'first-last' or CIDRs: 203.0.113.10-203.0.113.20, 203.0.113.0/28.",
    )
    avoid_buggy_ips: bool = Field(
        False, description="Skip addresses ending in .0 or .255 (some clients mishandle them)."
    )
    manual_assign: bool = Field(
        False, description="Only allocate from this pool when a Service asks for it."
    )
    service_allocation: ServiceAllocation | None = None
    """Which Services may use this pool, and its priority; absent: every Service,
    pools tried in the order listed. A Service asking for a pool or an address it may
    not use gets no VIP and an Event saying why."""
    advertisement: Advertisement | None = None
    """Attributes the pool's VIPs are announced with; a Service adds communities of
    its own by annotation (networking.bgplb.io/communities, .../large-communities).
    Absent: none (origin and next hop only)."""


class ControlPlanePeer(ApiModel):
    """An external peer of the control-plane VIP sessions (the seed's loadBalancer.bgpPeers)."""

    ip: IPv4
    """The peer's address."""
    asn: ASN
    control_plane_nodes: list[IPv4] = Field(
        default_factory=list,
        description="Node IPs of the control-plane nodes that peer with it; empty means all.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    bfd: BFD | None = Field(
        None,
        description="BFD on the sessions to this peer (from each control-plane node's "
        "IP, and from the floating IPs where the peer also serves Services); absent: none.",
    )


class ControlPlane(ApiModel):
    """The control-plane VIP and the peers it is advertised to from each control-plane node."""

    vip: IPv4 | None = None
    """The control-plane VIP advertised while the node's kube-apiserver is ready."""
    port: int = Field(443, ge=1, le=65535)
    """The port the control-plane VIP serves the API on."""
    peers: list[ControlPlanePeer] = Field(default_factory=list, max_length=64)
    """The routers the control-plane nodes peer with (the seed's loadBalancer.bgpPeers)."""


class BGPLoadBalancerSpec(ApiModel):
    """Cluster-wide settings; the seed keeps them in its Cluster object."""

    local_asn: ASN | None = Field(
        None,
        description="The cluster's ASN. Unset: the localASN of the BGPPeers peerSelector "
        "selects, when they all have the same one (as in the seed's third example).",
    )
    peer_selector: dict[str, str] | None = Field(
        None,
        description=(
            "Labels selecting the data-plane BGPPeers. Unset: the control-plane peers "
            "serve the data plane too."
        ),
    )
    address_pools: list[AddressPool] = Field(default_factory=list, max_length=64)
    """Where Service VIPs come from."""
    load_balancer_node_selector: dict[str, str] = Field(
        default_factory=lambda: {CONTROL_PLANE_ROLE: ""},
        description="Nodes that receive load-balanced traffic (next hops). "
        "Defaults to the control-plane nodes.",
    )
    control_plane: ControlPlane | None = None
    withdraw_without_endpoints: bool = Field(
        True,
        description="Withdraw a Service's VIP from the routers while it has no ready "
        "endpoint anywhere (it keeps the VIP), and advertise it again when one is ready: "
        "a route to a Service that cannot answer only black-holes its traffic. Off: "
        "advertised regardless (MetalLB has no such switch: it always waits for a "
        "ready endpoint).",
    )
    drain_seconds: int = Field(
        30,
        ge=0,
        le=3600,
        description="How long a cordoned node, or one labelled node.kubernetes.io/"
        "exclude-from-external-load-balancers, stays a next hop announced with the "
        "GRACEFUL_SHUTDOWN community (RFC 8326) and the worst MED before it is withdrawn: "
        "routers move new flows off it at once while its path stays up. 0: withdrawn "
        "at once.",
    )
    add_path: bool = Field(
        True,
        description="Advertise every load-balancer node as a next hop (BGP ADD-PATH, RFC 7911). "
        "Off: one next hop per VIP, VIPs spread across nodes.",
    )


class BGPLoadBalancerStatus(ApiModel):
    observed_generation: int = Field(0, ge=0)
    """The metadata.generation this status reflects."""
    allocated_vips: int = Field(0, ge=0)
    """How many Services hold a VIP from the pools."""
    conditions: Conditions


class BGPLoadBalancer(Resource):
    """Cluster-wide load-balancer settings: the ASN, the address pools, the control-
    plane VIP and its peers, and which BGPPeers serve Services. One per cluster,
    named default."""

    KIND: ClassVar[Kind] = Kind(
        kind="BGPLoadBalancer",
        plural="bgploadbalancers",
        short_names=("blb",),
        singleton=True,
        columns=(
            PrinterColumn(name="Local ASN", type="integer", json_path=".spec.localASN"),
            PrinterColumn(name="ADD-PATH", type="boolean", json_path=".spec.addPath"),
            PrinterColumn(name="VIPs", type="integer", json_path=".status.allocatedVIPs"),
            PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp"),
        ),
    )

    kind: Literal["BGPLoadBalancer"] = "BGPLoadBalancer"
    spec: BGPLoadBalancerSpec
    status: BGPLoadBalancerStatus = Field(default_factory=BGPLoadBalancerStatus)
