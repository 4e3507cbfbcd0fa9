"""Validation of our objects, shared by the controller, the CLI and the webhooks.

Every error names the field (as written in the manifest) and the reason. Three layers:
`parse` checks types and ranges (pydantic), `check_object` rules within one object,
`check_against` rules between an object and the rest of the configuration.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from bgplb.api import (
    BY_KIND,
    BGPLoadBalancer,
    BGPPeer,
    NetworkGatewayGroup,
    Resource,
)
from bgplb.api.bgploadbalancer import parse_pool_entry
from bgplb.api.common import read
from bgplb.api.contract import SINGLETON_NAME
from bgplb.core.local_asn import local_asn_of, selected
from bgplb.core.pools import Pool
from bgplb.core.snapshot import Peer


@dataclass(frozen=True, order=True)
class FieldError:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class InvalidObjectError(ValueError):
    """Raised by `load` with every error found."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(map(str, self.errors)))


def field_path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def error_reason(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def parse(
    obj: Mapping[str, Any], *, lenient: bool = False
) -> tuple[Resource | None, list[FieldError]]:
    """A manifest (as a dict) → the typed object, or the errors that stop it.
    `lenient`: reading what is stored (unknown fields ignored, `api.common.read`),
    not judging what a user wrote (unknown fields are typos)."""
    kind = obj.get("kind")
    cls = BY_KIND.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return None, [
            FieldError("kind", f"unknown kind {kind!r}; expected one of {sorted(BY_KIND)}")
        ]
    try:
        return (read(cls, obj) if lenient else cls.model_validate(obj)), []
    except ValidationError as e:
        return None, [FieldError(field_path(err["loc"]), error_reason(err)) for err in e.errors()]


def _duplicates(items: Sequence[Any], path: str, what: str = "duplicate of") -> list[FieldError]:
    seen: dict[Any, int] = {}
    errors = []
    for i, item in enumerate(items):
        if item in seen:
            errors.append(FieldError(f"{path}[{i}]", f"{what} {path}[{seen[item]}] ({item})"))
        else:
            seen[item] = i
    return errors


def _singleton(res: Resource) -> list[FieldError]:
    if res.metadata.name and res.metadata.name != SINGLETON_NAME:
        return [
            FieldError(
                "metadata.name",
                f"must be {SINGLETON_NAME!r}: there is one {res.kind} per cluster",
            )
        ]
    return []


def _pool_ranges(lb: BGPLoadBalancer) -> list[tuple[str, int, int]]:
    """(field path, first, last) of every pool entry."""
    return [
        (f"spec.addressPools[{i}].addresses[{j}]", *parse_pool_entry(entry))
        for i, pool in enumerate(lb.spec.address_pools)
        for j, entry in enumerate(pool.addresses)
    ]


def _aggregation_errors(lb: BGPLoadBalancer) -> list[FieldError]:
    """An aggregate must not cover an address outside its pool: another pool's, a
    node's, a router's."""
    errors = []
    for i, pool in enumerate(lb.spec.address_pools):
        length = pool.advertisement.aggregation_length if pool.advertisement else 32
        block = 1 << (32 - length)
        for first, last in Pool.from_api(pool).ranges:
            if first % block or (last + 1) % block:
                span = f"{ipaddress.IPv4Address(first)}-{ipaddress.IPv4Address(last)}"
                errors.append(
                    FieldError(
                        f"spec.addressPools[{i}].advertisement.aggregationLength",
                        f"{length}: the pool's {span} is not made of whole /{length} blocks, "
                        "so an aggregate would cover addresses outside the pool",
                    )
                )
                break
    return errors


def _check_load_balancer(lb: BGPLoadBalancer) -> list[FieldError]:
    spec = lb.spec
    errors = _singleton(lb)
    errors += _duplicates([p.name for p in spec.address_pools], "spec.addressPools", "name repeats")
    ranges = sorted(_pool_ranges(lb), key=lambda r: (r[1], r[2]))
    for (path_a, _, last_a), (path_b, first_b, _) in itertools.pairwise(ranges):
        if first_b <= last_a:
            errors.append(FieldError(path_b, f"overlaps {path_a}"))
    errors += _aggregation_errors(lb)
    cp = spec.control_plane
    if cp is None:
        return errors
    for i, peer in enumerate(cp.peers):
        if peer.asn == spec.local_asn:
            errors.append(
                FieldError(
                    f"spec.controlPlane.peers[{i}].asn",
                    f"equals spec.localASN ({spec.local_asn}): only eBGP is supported",
                )
            )
        errors += _duplicates(
            peer.control_plane_nodes, f"spec.controlPlane.peers[{i}].controlPlaneNodes"
        )
    errors += _duplicates([p.ip for p in cp.peers], "spec.controlPlane.peers", "same peer IP as")
    if cp.vip is not None:
        for path, first, last in ranges:
            if first <= int(cp.vip) <= last:
                errors.append(
                    FieldError("spec.controlPlane.vip", f"{cp.vip} is inside address pool {path}")
                )
    return errors


def _check_peer(peer: BGPPeer) -> list[FieldError]:
    spec = peer.spec
    errors = []
    if spec.peer_asn == spec.local_asn:
        errors.append(
            FieldError(
                "spec.peerASN", f"equals spec.localASN ({spec.local_asn}): only eBGP is supported"
            )
        )
    if spec.keepalive_time_seconds * 3 > spec.hold_time_seconds:
        errors.append(
            FieldError(
                "spec.keepaliveTimeSeconds",
                f"{spec.keepalive_time_seconds}s is more than a third of holdTimeSeconds "
                f"({spec.hold_time_seconds}s)",
            )
        )
    try:
        ipaddress.IPv4Address(peer.metadata.name)
    except ValueError:
        pass
    else:
        errors.append(
            FieldError(
                "metadata.name",
                "must not be an IP address: control-plane sessions are named <peerIP>-<node>",
            )
        )
    return errors


def check_object(res: Resource) -> list[FieldError]:
    """Rules within one object."""
    if isinstance(res, NetworkGatewayGroup):
        return _singleton(res) + _duplicates(res.spec.floating_ips, "spec.floatingIPs")
    if isinstance(res, BGPLoadBalancer):
        return _check_load_balancer(res)
    if isinstance(res, BGPPeer):
        return _check_peer(res)
    return []


@dataclass(frozen=True)
class Config:
    """The user-written configuration an object is checked against."""

    load_balancer: BGPLoadBalancer | None = None
    gateway: NetworkGatewayGroup | None = None
    peers: Sequence[BGPPeer] = field(default_factory=tuple)


def check_against(res: Resource, config: Config) -> list[FieldError]:
    """Rules between `res` and the rest of the configuration (itself excluded)."""
    errors: list[FieldError] = []
    lb = res if isinstance(res, BGPLoadBalancer) else config.load_balancer
    gateway = res if isinstance(res, NetworkGatewayGroup) else config.gateway
    if isinstance(res, NetworkGatewayGroup | BGPLoadBalancer) and lb and gateway:
        ranges = _pool_ranges(lb)
        vip = lb.spec.control_plane.vip if lb.spec.control_plane else None
        for i, ip in enumerate(gateway.spec.floating_ips):
            here = f"spec.floatingIPs[{i}]"
            for path, first, last in ranges:
                if first <= int(ip) <= last:
                    errors.append(
                        FieldError(
                            here, f"{ip} is inside address pool {path} of the BGPLoadBalancer"
                        )
                        if res is gateway
                        else FieldError(
                            path, f"contains floating IP {ip} of the NetworkGatewayGroup"
                        )
                    )
            if ip == vip:
                errors.append(
                    FieldError(here, f"{ip} is the control-plane VIP")
                    if res is gateway
                    else FieldError("spec.controlPlane.vip", f"{ip} is a floating IP")
                )
    if isinstance(res, BGPPeer):
        for other in config.peers:
            if other.metadata.name == res.metadata.name:
                continue
            if other.spec.peer_ip == res.spec.peer_ip:
                errors.append(
                    FieldError(
                        "spec.peerIP",
                        f"{res.spec.peer_ip} is already the peer of BGPPeer {other.metadata.name}",
                    )
                )
    errors += _local_asn(res, lb, config)
    return errors


def _local_asn(res: Resource, lb: BGPLoadBalancer | None, config: Config) -> list[FieldError]:
    """A BGPLoadBalancer without localASN takes it from the BGPPeers it selects: it
    must be unambiguous, and a BGPPeer may not make it ambiguous."""
    if lb is None or lb.spec.local_asn is not None:
        return []
    if not isinstance(res, BGPLoadBalancer | BGPPeer):
        return []
    peers = [
        Peer(p.metadata.name, p.metadata.labels, p.spec)
        for p in config.peers
        if not (isinstance(res, BGPPeer) and p.metadata.name == res.metadata.name)
    ]
    if isinstance(res, BGPPeer):
        before = local_asn_of(lb.spec, peers)
        peers.append(Peer(res.metadata.name, res.metadata.labels, res.spec))
        after = local_asn_of(lb.spec, peers)
        if isinstance(after, str) and not isinstance(before, str):
            return [
                FieldError(
                    "spec.localASN",
                    f"{res.spec.local_asn} differs from {before}, the ASN BGPLoadBalancer "
                    "default takes from the BGPPeers it selects (it has no localASN of its own)",
                )
            ]
        return []
    # None selected yet is no error: `kubectl apply` of the seed's file creates the
    # BGPLoadBalancer before its BGPPeers (the controller says what it waits for).
    if selected(lb.spec, peers) and isinstance(asn := local_asn_of(lb.spec, peers), str):
        return [FieldError("spec.localASN", asn)]
    return []


def validate(
    obj: Mapping[str, Any], config: Config | None = None
) -> tuple[Resource | None, list[FieldError]]:
    """Every error of one manifest: parse, then its own rules, then against `config`."""
    res, errors = parse(obj)
    if res is not None:
        errors = check_object(res) + check_against(res, config or Config())
    return res, errors


def load(obj: Mapping[str, Any], config: Config | None = None) -> Resource:
    """The typed object, or InvalidObject listing every error."""
    res, errors = validate(obj, config)
    if errors or res is None:
        raise InvalidObjectError(errors)
    return res
