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
            if svc.requested_ip in (None, svc.current_ip):
                problems[svc.key] = f"address {svc.current_ip} is already used by {held[current]}"
            continue
        held[current] = svc.key
        if svc.requested_ip in (None, svc.current_ip):
            vips[svc.key] = svc.current_ip
        else:
            tentative[svc.key] = current

    for svc in ordered:
        if svc.requested_ip is None or svc.key in vips:
            continue
        wanted = int(svc.requested_ip)
        if not _may_hold(svc, wanted, pools):
            where = f"address pool {svc.pool!r}" if svc.pool else "any address pool"
            problems[svc.key] = f"requested address {svc.requested_ip} is not in {where}"
        elif held.get(wanted, svc.key) != svc.key:
            problems[svc.key] = (
                f"requested address {svc.requested_ip} is already used by {held[wanted]}"
            )
        else:
            if (old := tentative.pop(svc.key, None)) is not None:
                del held[old]
            held[wanted] = svc.key
            vips[svc.key] = svc.requested_ip
            problems.pop(svc.key, None)
            continue
        if svc.key in tentative:
            vips[svc.key] = IPv4Address(tentative.pop(svc.key))

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
