"""Service VIP allocation from the address pools: requested, stable, unique."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from bgplb.core.pools import Pool
from bgplb.core.snapshot import Service, ServiceKey


@dataclass(frozen=True)
class VipPlan:
    vips: Mapping[ServiceKey, IPv4Address]
    problems: Mapping[ServiceKey, str]


def _pools_for(svc: Service, pools: Mapping[str, Pool]) -> tuple[list[Pool], str | None]:
    """Pools the service may be allocated from automatically, or why there are none."""
    if svc.pool is not None:
        if svc.pool not in pools:
            return [], f"address pool {svc.pool!r} (from its annotation) does not exist"
        return [pools[svc.pool]], None
    auto = [p for p in pools.values() if not p.manual_assign]
    if not auto:
        return [], "no address pool is open to automatic allocation"
    return auto, None


def _may_hold(svc: Service, address: int, pools: Mapping[str, Pool]) -> bool:
    if svc.pool is not None:
        return svc.pool in pools and address in pools[svc.pool]
    return any(address in p for p in pools.values())


@dataclass
class _Allocation:
    pools: Mapping[str, Pool]
    held: MutableMapping[int, ServiceKey]
    vips: dict[ServiceKey, IPv4Address] = field(default_factory=dict)
    problems: dict[ServiceKey, str] = field(default_factory=dict)
    tentative: dict[ServiceKey, int] = field(default_factory=dict)
    """VIPs kept for Services that asked for another, until their request is decided."""

    def keep_current(self, ordered: list[Service]) -> None:
        for svc in ordered:
            if svc.current_ip is None:
                continue
            current = int(svc.current_ip)
            if not _may_hold(svc, current, self.pools):
                continue
            if current in self.held:
                continue  # claimed twice (status edited by hand?): the loser gets a fresh VIP
            self.held[current] = svc.key
            if svc.requested_ip in (None, svc.current_ip):
                self.vips[svc.key] = svc.current_ip
            else:
                self.tentative[svc.key] = current

    def grant_requests(self, ordered: list[Service]) -> None:
        # A request may wait on an address another Service is about to give up for
        # its own request, so resolve requests until a pass grants nothing new.
        pending = [s for s in ordered if s.requested_ip is not None and s.key not in self.vips]
        progress = True
        while pending and progress:
            progress = False
            for svc in list(pending):
                wanted = int(svc.requested_ip or 0)
                holder = self.held.get(wanted, svc.key)
                allowed = _may_hold(svc, wanted, self.pools)
                if allowed and holder in self.tentative and holder != svc.key:
                    continue
                pending.remove(svc)
                if not allowed:
                    where = f"address pool {svc.pool!r}" if svc.pool else "any address pool"
                    self.problems[svc.key] = f"requested {svc.requested_ip} is not in {where}"
                elif holder != svc.key:
                    self.problems[svc.key] = (
                        f"requested {svc.requested_ip} is already used by {holder}"
                    )
                else:
                    if (old := self.tentative.pop(svc.key, None)) is not None:
                        del self.held[old]
                    self.held[wanted] = svc.key
                    self.vips[svc.key] = IPv4Address(wanted)
                    progress = True
        for svc in pending:
            holder = self.held[int(svc.requested_ip or 0)]
            self.problems[svc.key] = f"requested {svc.requested_ip} is already used by {holder}"
        # A Service whose request failed keeps the VIP it had: nothing working is lost.
        for key, address in self.tentative.items():
            self.vips[key] = IPv4Address(address)

    def allocate_rest(self, ordered: list[Service]) -> None:
        # Addresses below a pool's cursor are all held: from here on `held` only
        # grows, so each pool is scanned once however many Services are new.
        cursor: dict[str, int] = {}
        for svc in ordered:
            if svc.key in self.vips or svc.key in self.problems or svc.requested_ip is not None:
                continue
            candidates, why_none = _pools_for(svc, self.pools)
            for pool in candidates:
                found = pool.lowest_free(self.held, cursor.get(pool.name, 0))
                if found is not None:
                    cursor[pool.name] = found + 1
                    self.held[found] = svc.key
                    self.vips[svc.key] = IPv4Address(found)
                    break
                cursor[pool.name] = 1 << 32
            else:
                self.problems[svc.key] = why_none or (
                    "address pool(s) exhausted: " + ", ".join(p.name for p in candidates)
                )


def allocate_vips(
    services: Iterable[Service],
    pools: Mapping[str, Pool],
    held: MutableMapping[int, ServiceKey],
) -> VipPlan:
    """Give each service a VIP; `held` (address → holder) has the others' and is updated.

    Order of precedence, each step in Service key order so the result does not
    depend on input order:
    1. a Service keeps the VIP it has, unless it now asks for another;
    2. a requested VIP is granted if it is in a pool the Service may use and free;
       a Service whose request fails keeps the VIP it had;
    3. the rest get the lowest free address of their pools.
    """
    ordered = sorted(services, key=lambda s: s.key)
    allocation = _Allocation(pools, held)
    allocation.keep_current(ordered)
    allocation.grant_requests(ordered)
    allocation.allocate_rest(ordered)
    return VipPlan(vips=allocation.vips, problems=allocation.problems)
