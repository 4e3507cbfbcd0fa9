"""Floating IP → node placement: same subnet, live, stable, balanced, one node each."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from ipaddress import IPv4Address

from bgplb.core.snapshot import Node


@dataclass(frozen=True)
class Placement:
    holders: Mapping[IPv4Address, str]
    """Floating IP → the one node that holds it."""
    unplaced: Mapping[IPv4Address, str]
    """Floating IP → why no node holds it."""


def place_floating_ips(
    floating_ips: Iterable[IPv4Address],
    nodes: Iterable[Node],
    current: Mapping[IPv4Address, str],
    in_use: AbstractSet[IPv4Address] = frozenset(),
) -> Placement:
    """Keep every IP where it is while its holder stays eligible; spread the rest.

    Balance alone never moves an IP whose holder is still eligible: a move restarts
    that address's BGP sessions. Redundancy does: a node holding two or more IPs
    while a node that could take one holds none puts every session on one machine
    (it happens when nodes come up one by one), so one IP moves over — an idle one
    (`in_use` lists those sessions start from) when there is one.
    """
    node_list = sorted(nodes, key=lambda n: n.name)
    owner_of_address = {a.ip: n.name for n in node_list for a in n.addresses}
    holders: dict[IPv4Address, str] = {}
    unplaced: dict[IPv4Address, str] = {}
    eligible: dict[IPv4Address, list[str]] = {}

    for ip in sorted(set(floating_ips)):
        if ip in owner_of_address:
            unplaced[ip] = f"it is an address of node {owner_of_address[ip]}"
            continue
        in_subnet = [n for n in node_list if any(ip in a.network for a in n.addresses)]
        live = [n.name for n in in_subnet if n.ready]
        if not live:
            unplaced[ip] = (
                "no node has an address in its subnet"
                if not in_subnet
                else f"no ready node in its subnet ({len(in_subnet)} not ready)"
            )
            continue
        eligible[ip] = live
        if current.get(ip) in live:
            holders[ip] = current[ip]

    load: Counter[str] = Counter(holders.values())
    fresh = sorted(
        (ip for ip in eligible if ip not in holders), key=lambda ip: (len(eligible[ip]), ip)
    )
    for ip in fresh:
        # Most constrained first, so a flexible IP does not take the only node another could use.
        holders[ip] = min(eligible[ip], key=lambda n: (load[n], n))
        load[holders[ip]] += 1

    moved = True
    while moved:
        moved = False
        for ip in sorted(holders, key=lambda ip: (ip in in_use, ip)):
            here = holders[ip]
            empty = sorted(n for n in eligible[ip] if load[n] == 0)
            if load[here] >= 2 and empty:
                holders[ip] = empty[0]
                load[here] -= 1
                load[empty[0]] += 1
                moved = True
                break

    # Greedy order can still leave a newly placed IP on a node two above an
    # alternative; move such IPs until none can improve. The sum of squared loads
    # falls with every move, so this ends.
    moved = True
    while moved:
        moved = False
        for ip in fresh:
            here = holders[ip]
            best = min(eligible[ip], key=lambda n: (load[n], n))
            if load[best] + 1 < load[here]:
                holders[ip] = best
                load[here] -= 1
                load[best] += 1
                moved = True
    return Placement(holders=dict(sorted(holders.items())), unplaced=unplaced)
