"""Service VIP allocation from the address pools: requested, stable, unique unless
shared by Services that may share (core/sharing.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from bgplb.core.pools import Pool
from bgplb.core.sharing import conflict
from bgplb.core.snapshot import Service, ServiceKey


@dataclass(frozen=True)
class VipPlan:
    vips: Mapping[ServiceKey, IPv4Address]
    problems: Mapping[ServiceKey, str]


def _refuses(pool: Pool, svc: Service) -> str | None:
    return pool.refuses(svc.namespace, svc.labels, svc.namespace_labels)


def _pools_for(svc: Service, pools: Mapping[str, Pool]) -> tuple[list[Pool], str | None]:
    """Pools the service may be allocated from automatically, in the order to try
    them (priority, then as listed), or why there are none."""
    if svc.pool is not None:
        if svc.pool not in pools:
            return [], f"address pool {svc.pool!r} (from its annotation) does not exist"
        why = _refuses(pools[svc.pool], svc)
        return ([], why) if why else ([pools[svc.pool]], None)
    auto = [p for p in pools.values() if not p.manual_assign]
    if not auto:
        return [], "no address pool is open to automatic allocation"
    open_to_it = [p for p in auto if _refuses(p, svc) is None]
    if not open_to_it:
        return [], "no address pool serves it: " + "; ".join(str(_refuses(p, svc)) for p in auto)
    return sorted(open_to_it, key=lambda p: p.order), None


def _named(svc: Service, pools: Mapping[str, Pool]) -> Iterable[Pool]:
    """The pools `svc` may have an address from: the one it names, or any."""
    if svc.pool is None:
        return pools.values()
    return [pools[svc.pool]] if svc.pool in pools else []


def _may_hold(svc: Service, address: int, pools: Mapping[str, Pool]) -> bool:
    return any(address in p and _refuses(p, svc) is None for p in _named(svc, pools))


def _refusal(svc: Service, address: int, pools: Mapping[str, Pool]) -> str:
    """Why `svc` may not have `address` (`_may_hold` said so), after "requested X"."""
    for pool in _named(svc, pools):
        if address in pool and (why := _refuses(pool, svc)):
            return f": {why}"
    return f" is not in {f'address pool {svc.pool!r}' if svc.pool else 'any address pool'}"


@dataclass
class _Allocation:
    pools: Mapping[str, Pool]
    held: MutableMapping[int, list[Service]]
    """Address → the Services on it (several only when they share it: core/sharing.py)."""
    vips: dict[ServiceKey, IPv4Address] = field(default_factory=dict)
    problems: dict[ServiceKey, str] = field(default_factory=dict)
    tentative: dict[ServiceKey, int] = field(default_factory=dict)
    """VIPs kept for Services that asked for another, until their request is decided."""

    def _take(self, svc: Service, address: int) -> None:
        self.held.setdefault(address, []).append(svc)

    def _give_up(self, svc: Service, address: int) -> None:
        left = [s for s in self.held.get(address, []) if s.key != svc.key]
        if left:
            self.held[address] = left
        else:
            self.held.pop(address, None)

    def keep_current(self, ordered: list[Service]) -> None:
        for svc in ordered:
            if svc.current_ip is None:
                continue
            current = int(svc.current_ip)
            if not _may_hold(svc, current, self.pools):
                continue
            if conflict(svc, self.held.get(current, ())) is not None:
                continue  # claimed twice (status edited by hand?): the loser gets a fresh VIP
            self._take(svc, current)
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
                others = [h for h in self.held.get(wanted, ()) if h.key != svc.key]
                why = conflict(svc, others)
                allowed = _may_hold(svc, wanted, self.pools)
                if allowed and why and any(h.key in self.tentative for h in others):
                    continue
                pending.remove(svc)
                if not allowed:
                    refusal = _refusal(svc, wanted, self.pools)
                    self.problems[svc.key] = f"requested {svc.requested_ip}{refusal}"
                elif why:
                    self.problems[svc.key] = (
                        f"requested {svc.requested_ip} is already used by {why}"
                    )
                else:
                    if (old := self.tentative.pop(svc.key, None)) is not None:
                        self._give_up(svc, old)
                    if svc not in self.held.get(wanted, ()):
                        self._take(svc, wanted)
                    self.vips[svc.key] = IPv4Address(wanted)
                    progress = True
        for svc in pending:
            others = [h for h in self.held.get(int(svc.requested_ip or 0), ()) if h.key != svc.key]
            why = conflict(svc, others) or ", ".join(h.key for h in others)
            self.problems[svc.key] = f"requested {svc.requested_ip} is already used by {why}"
        # A Service whose request failed keeps the VIP it had: nothing working is lost.
        for key, address in self.tentative.items():
            self.vips[key] = IPv4Address(address)

    def allocate_rest(self, ordered: list[Service]) -> None:
        # Addresses below a pool's cursor are all held: from here on `held` only
        # grows, so each pool is scanned once however many Services are new.
        cursor: dict[str, int] = {}
        shared = _by_sharing_key(self.held)
        for svc in ordered:
            if svc.key in self.vips or svc.key in self.problems or svc.requested_ip is not None:
                continue
            candidates, why_none = _pools_for(svc, self.pools)
            # A Service with a sharing key joins an address its key already holds,
            # if it fits there (MetalLB and Cilium do the same), else takes a new one.
            joined = next(
                (
                    address
                    for address in shared.get(svc.sharing_key or "", ())
                    if any(address in p for p in candidates)
                    and conflict(svc, self.held[address]) is None
                ),
                None,
            )
            if joined is not None:
                self._take(svc, joined)
                self.vips[svc.key] = IPv4Address(joined)
                continue
            for pool in candidates:
                found = pool.lowest_free(self.held, cursor.get(pool.name, 0))
                if found is not None:
                    cursor[pool.name] = found + 1
                    self._take(svc, found)
                    self.vips[svc.key] = IPv4Address(found)
                    if svc.sharing_key:
                        shared.setdefault(svc.sharing_key, []).append(found)
                    break
                cursor[pool.name] = 1 << 32
            else:
                self.problems[svc.key] = why_none or (
                    "address pool(s) exhausted: " + ", ".join(p.name for p in candidates)
                )


def _by_sharing_key(held: Mapping[int, list[Service]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for address, services in sorted(held.items()):
        keys = {s.sharing_key for s in services}
        if len(keys) == 1 and (key := keys.pop()):
            out.setdefault(key, []).append(address)
    return out


def allocate_vips(
    services: Iterable[Service],
    pools: Mapping[str, Pool],
    held: MutableMapping[int, list[Service]],
) -> VipPlan:
    """Give each service a VIP; `held` (address → the Services on it) has the others'
    and is updated.

    Order of precedence, each step in Service key order so the result does not
    depend on input order:
    1. a Service keeps the VIP it has, unless it now asks for another;
    2. a requested VIP is granted if it is in a pool the Service may use and free,
       or held only by Services it may share with (core/sharing.py); a Service
       whose request fails keeps the VIP it had;
    3. a Service with a sharing key joins an address of its key where it fits;
    4. the rest get the lowest free address of their pools.
    """
    ordered = sorted(services, key=lambda s: s.key)
    allocation = _Allocation(pools, held)
    allocation.keep_current(ordered)
    allocation.grant_requests(ordered)
    allocation.allocate_rest(ordered)
    return VipPlan(vips=allocation.vips, problems=allocation.problems)
