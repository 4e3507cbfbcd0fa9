"""When Services may share one VIP, pure: the rule the allocator and the webhook
both apply.

Services share an address only when each asked to (the same sharing key), none of
their ports overlap (the ToRs deliver one address; kube-proxy tells the Services
apart by port), and their next hops are the same: with externalTrafficPolicy Local
the next hops are the nodes with a ready endpoint, so Local Services share only
with Local Services selecting the same Pods (MetalLB's rule too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bgplb.api.contract import ports_of, selector_of, sharing_key


class Sharer(Protocol):
    """What the rule looks at: a core Service, or `of_object` of a raw one."""

    @property
    def key(self) -> str: ...
    @property
    def sharing_key(self) -> str | None: ...
    @property
    def ports(self) -> frozenset[tuple[str, int]]: ...
    @property
    def local_traffic(self) -> bool: ...
    @property
    def selector(self) -> tuple[tuple[str, str], ...]: ...


@dataclass(frozen=True, slots=True)
class RawSharer:
    key: str
    sharing_key: str | None
    ports: frozenset[tuple[str, int]]
    local_traffic: bool
    selector: tuple[tuple[str, str], ...]


def of_object(svc: Mapping[str, Any]) -> RawSharer:
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    return RawSharer(
        key=f"{meta.get('namespace')}/{meta.get('name')}",
        sharing_key=sharing_key(svc),
        ports=ports_of(svc),
        local_traffic=spec.get("externalTrafficPolicy") == "Local",
        selector=selector_of(svc),
    )


def conflict(svc: Sharer, holders: Iterable[Sharer]) -> str | None:
    """Which holder `svc` may not share an address with, and why, worded to follow
    "already used by" (None: it may share with all of them)."""
    for other in holders:
        if other.key == svc.key:
            continue
        if svc.sharing_key is None or other.sharing_key != svc.sharing_key:
            if svc.sharing_key is None and other.sharing_key is None:
                return other.key
            mine = repr(svc.sharing_key) if svc.sharing_key else "none"
            theirs = repr(other.sharing_key) if other.sharing_key else "none"
            return f"{other.key} (sharing key {mine} here, {theirs} there)"
        overlap = sorted(svc.ports & other.ports)
        if overlap:
            shown = ", ".join(f"{proto}/{port}" for proto, port in overlap)
            return f"{other.key} on the same port(s): {shown}"
        if svc.local_traffic != other.local_traffic:
            theirs = "Local" if other.local_traffic else "Cluster"
            return (
                f"{other.key}, whose externalTrafficPolicy is {theirs} and this Service's "
                "is not (their next hops would differ)"
            )
        if svc.local_traffic and svc.selector != other.selector:
            return (
                f"{other.key}, which selects other Pods (Services with externalTrafficPolicy "
                "Local share a VIP only with the same selector)"
            )
    return None
