"""Service VIP allocation from the address pools: requested, stable, unique."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
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
       a Service whose request fails keeps the VIP it had (nothing working is lost);
    3. the rest get the lowest free address of their pools.
    """
    ordered = sorted(services, key=lambda s: s.key)
    vips: dict[ServiceKey, IPv4Address] = {}
    problems: dict[ServiceKey, str] = {}
    tentative: dict[ServiceKey, int] = {}

    for svc in ordered:
        if svc.current_ip is None:
            continue
        current = int(svc.current_ip)
        if not _may_hold(svc, current, pools):
            continue
        if current in held:
            continue  # claimed twice (status edited by hand?): the loser gets a fresh VIP
        held[current] = svc.key
        if svc.requested_ip in (None, svc.current_ip):
            vips[svc.key] = svc.current_ip
        else:
            tentative[svc.key] = current

    # A request may wait on an address another Service is about to give up for its
    # own request, so resolve requests until a pass grants nothing new.
    pending = [s for s in ordered if s.requested_ip is not None and s.key not in vips]
    progress = True
    while pending and progress:
        progress = False
        for svc in list(pending):
            assert svc.requested_ip is not None
            wanted = int(svc.requested_ip)
            holder = held.get(wanted, svc.key)
            if _may_hold(svc, wanted, pools) and holder in tentative and holder != svc.key:
                continue
            pending.remove(svc)
            if not _may_hold(svc, wanted, pools):
                where = f"address pool {svc.pool!r}" if svc.pool else "any address pool"
                problems[svc.key] = f"requested address {svc.requested_ip} is not in {where}"
            elif holder != svc.key:
                problems[svc.key] = (
                    f"requested address {svc.requested_ip} is already used by {holder}"
                )
            else:
                if (old := tentative.pop(svc.key, None)) is not None:
                    del held[old]
                held[wanted] = svc.key
                vips[svc.key] = svc.requested_ip
                problems.pop(svc.key, None)
                progress = True
    for svc in pending:
        problems[svc.key] = (
            f"requested address {svc.requested_ip} is already used by "
            f"{held[int(svc.requested_ip or 0)]}"
        )
    # A Service whose request failed keeps the VIP it had: nothing working is lost.
    for key, address in tentative.items():
        vips[key] = IPv4Address(address)

    # Addresses below a pool's cursor are all held: within one call `held` only grows
    # from here on, so each pool is scanned once however many Services are new.
    cursor: dict[str, int] = {}
    for svc in ordered:
        if svc.key in vips or svc.key in problems or svc.requested_ip is not None:
            continue
        candidates, why_none = _pools_for(svc, pools)
        for pool in candidates:
            found = pool.lowest_free(held, cursor.get(pool.name, 0))
            if found is not None:
                cursor[pool.name] = found + 1
                held[found] = svc.key
                vips[svc.key] = IPv4Address(found)
                break
            cursor[pool.name] = 1 << 32
        else:
            problems[svc.key] = why_none or (
                "address pool(s) exhausted: " + ", ".join(p.name for p in candidates)
            )
    return VipPlan(vips=vips, problems=problems)
