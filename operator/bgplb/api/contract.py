"""The API's contract beyond its schemas, in one place: the names, labels,
annotations and Lease format that the controller, the agents and the webhook agree
on, and the two questions all of them ask of a Service (is it ours, what is its
VIP). Each is defined here only; everything else imports it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

SINGLETON_NAME = "default"
"""The one BGPLoadBalancer and the one NetworkGatewayGroup of a cluster."""
LOAD_BALANCER_CLASS = "bgplb.io/bgp"
"""Services with this loadBalancerClass, or none, are ours; others are left alone."""

# --- on Services and our objects --------------------------------------------------

POOL_ANNOTATION = "networking.bgplb.io/address-pool"
"""On a Service: the address pool its VIP comes from."""
SHARING_KEY_ANNOTATION = "networking.bgplb.io/sharing-key"
"""On a Service: Services with the same key may share one VIP when none of their
ports overlap (MetalLB's `metallb.io/allow-shared-ip`, Cilium's
`lbipam.cilium.io/sharing-key`)."""
SHARING_KEY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
"""What a sharing key may be (a label value's shape)."""
COMMUNITIES_ANNOTATION = "networking.bgplb.io/communities"
"""On a Service: standard communities its VIP carries besides its pool's,
comma-separated ('65000:100,no-export')."""
LARGE_COMMUNITIES_ANNOTATION = "networking.bgplb.io/large-communities"
"""On a Service: large communities its VIP carries besides its pool's, comma-separated."""
ALLOW_DELETE_ANNOTATION = "networking.bgplb.io/allow-delete"
"""`true` on a singleton: delete it although Services still use it."""
NODE_LABEL = "networking.bgplb.io/node"
"""On a BGPSession: the node that runs it (`node_label_value`); agents select theirs."""
TYPE_LABEL = "networking.bgplb.io/type"
"""On a BGPSession: Service or ControlPlane."""

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
"""On a Node (Kubernetes' own label, any value): take it out of load balancing. It
leaves the next hops gracefully, as a cordoned node does (`draining`)."""


def draining(node: Mapping[str, Any]) -> bool:
    """A node that is to leave the next hops gracefully: cordoned (kubectl cordon or
    drain) or labelled EXCLUDE_LABEL."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    return bool((node.get("spec") or {}).get("unschedulable")) or EXCLUDE_LABEL in labels


# --- the node Leases ------------------------------------------------------------------

LEASE_PREFIX = "bgplb-node-"
"""`bgplb-node-<node>` in the operator's namespace, renewed by the node's agent."""
ADDRESSES_ANNOTATION = "networking.bgplb.io/addresses"
"""The node's addresses with prefix lengths, comma-separated: the controller places a
floating IP on a node with an address in its subnet."""
HOLDING_ANNOTATION = "networking.bgplb.io/floating-ips"
"""`<epoch>:<ip>,<ip>`: the floating IPs plumbed on the node, as of the placement
epoch (NetworkGatewayGroup status) the agent last applied. The controller hands a
moving floating IP to its new node only once its old node reports it gone."""
WITNESS_ANNOTATION = "networking.bgplb.io/witness"
"""`host:port` where the node's agent answers witness questions and mesh probes."""


def lease_name(node: str) -> str:
    return LEASE_PREFIX + node


def lease_node(name: str) -> str | None:
    """The node a Lease is for; None for a Lease that is not a node's."""
    return name.removeprefix(LEASE_PREFIX) if name.startswith(LEASE_PREFIX) else None


def format_addresses(addresses: Iterable[IPv4Interface]) -> str:
    return ",".join(a.with_prefixlen for a in addresses)


def parse_addresses(text: str | None) -> list[IPv4Interface]:
    """The readable addresses of an ADDRESSES_ANNOTATION (unreadable parts skipped)."""
    out = []
    for part in (text or "").split(","):
        try:
            out.append(IPv4Interface(part.strip()))
        except ValueError:
            continue
    return out


def format_holding(epoch: int, ips: Iterable[IPv4Address]) -> str:
    return f"{epoch}:" + ",".join(str(ip) for ip in sorted(ips))


def parse_holding(text: str | None) -> tuple[int, frozenset[IPv4Address]] | None:
    """None when absent or unreadable: the agent says nothing the controller can use."""
    if not text or ":" not in text:
        return None
    epoch, _, ips = text.partition(":")
    try:
        return int(epoch), frozenset(IPv4Address(ip) for ip in ips.split(",") if ip)
    except ValueError:
        return None


# --- Services -----------------------------------------------------------------------


def is_ours(svc: Mapping[str, Any]) -> bool:
    """A LoadBalancer Service with our class or none."""
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and spec.get("loadBalancerClass") in (
        None,
        LOAD_BALANCER_CLASS,
    )


def requested_vip(svc: Mapping[str, Any]) -> IPv4Address | None:
    """The address `spec.loadBalancerIP` asks for (None: none, or not an IPv4 address)."""
    try:
        return IPv4Address((svc.get("spec") or {}).get("loadBalancerIP") or "")
    except ValueError:
        return None


def _ingress(svc: Mapping[str, Any]) -> list[IPv4Address]:
    out = []
    for ingress in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        try:
            out.append(IPv4Address(ingress.get("ip", "")))
        except ValueError:
            continue
    return out


def current_vip(svc: Mapping[str, Any]) -> IPv4Address | None:
    """The VIP the Service's status shows (its first IPv4 ingress)."""
    return next(iter(_ingress(svc)), None)


def vips_of(svc: Mapping[str, Any]) -> set[IPv4Address]:
    """Every address the Service holds or asks for."""
    requested = requested_vip(svc)
    return set(_ingress(svc)) | ({requested} if requested else set())


# --- names ----------------------------------------------------------------------------


def fit(text: str, limit: int) -> str:
    """`text` if it is at most `limit` characters, else a prefix of it and a hash of
    all of it: distinct texts stay distinct, and the result still starts and ends
    with an alphanumeric character (names and label values must)."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[: limit - 17].rstrip('-.')}-{digest}"


def node_label_value(node: str) -> str:
    """The NODE_LABEL value for a node: its name, unless that is over the 63
    characters of a label value (a node name may have 253)."""
    return fit(node, 63)


def sharing_key(svc: Mapping[str, Any]) -> str | None:
    """Its SHARING_KEY_ANNOTATION (None: it shares its VIP with no one)."""
    annotations = (svc.get("metadata") or {}).get("annotations") or {}
    key = annotations.get(SHARING_KEY_ANNOTATION)
    return key if isinstance(key, str) and key else None


def ports_of(svc: Mapping[str, Any]) -> frozenset[tuple[str, int]]:
    """Its (protocol, port) pairs: what may not overlap on a shared VIP."""
    ports = (svc.get("spec") or {}).get("ports") or []
    return frozenset(
        (str(p.get("protocol") or "TCP"), int(p["port"]))
        for p in ports
        if isinstance(p, Mapping) and isinstance(p.get("port"), int)
    )


def selector_of(svc: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    selector = (svc.get("spec") or {}).get("selector") or {}
    return tuple(sorted((str(k), str(v)) for k, v in selector.items()))
