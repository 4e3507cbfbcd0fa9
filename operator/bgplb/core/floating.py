"""Floating IP → node placement: same subnet, live, stable, balanced, one node each."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from bgplb.core.snapshot import Node


@dataclass(frozen=True)
class Placement:
    holders: Mapping[IPv4Address, str]
    """Floating IP → the one node that holds it."""
    unplaced: Mapping[IPv4Address, str]
    """Floating IP → why no node holds it."""
    releasing: Mapping[IPv4Address, str] = field(default_factory=dict)
    """Floating IP → the live node that must let go of it before its new node takes it."""
    epoch: int = 0
    """Bumped whenever a release starts: agents report which epoch their holdings
    reflect, so a report that predates the release proves nothing."""


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


def hand_over(
    target: Placement,
    nodes: Iterable[Node],
    current: Mapping[IPv4Address, str],
    releasing: Mapping[IPv4Address, str],
    epoch: int,
) -> Placement:
    """Make moves between live nodes break before they make: an address is never live
    on two nodes, even for the moment between two agents acting on one status write.

    A floating IP whose target differs from where it is, on a live node, is first
    taken from that node (`releasing`, a new epoch) and given to its target only once
    that node's agent reports, in a Lease renewed from the new epoch or later, that it
    no longer holds it; likewise while any other live node's Lease says it holds it.
    A node whose Lease has expired never blocks: its agent fenced itself before the
    Lease expired (fencing.py), so a failover is not slowed down. An agent that
    reports no epoch (older than this rule) can only be taken at its word.
    """
    live = {n.name: n for n in nodes if n.ready}

    def still_holds(node: str, ip: IPv4Address, since: int) -> bool:
        n = live.get(node)
        if n is None:
            return False
        if ip in n.holding:
            return True
        return n.holding_epoch is not None and n.holding_epoch < since

    holders = dict(target.holders)
    unplaced = dict(target.unplaced)
    now_releasing: dict[IPv4Address, str] = {}
    bumped = epoch
    for ip, to in sorted(target.holders.items()):
        was = current.get(ip)
        if was is not None and was != to and was in live:
            bumped = epoch + 1
            giver = was
        elif releasing.get(ip, to) != to and still_holds(releasing[ip], ip, epoch):
            giver = releasing[ip]
        else:
            others = sorted(n for n in live if n != to and ip in live[n].holding)
            if not others:
                continue
            giver = others[0]
        del holders[ip]
        now_releasing[ip] = giver
        unplaced[ip] = f"moving to node {to}: waiting for node {giver} to release it"
    return Placement(
        holders=holders,
        unplaced=dict(sorted(unplaced.items())),
        releasing=now_releasing,
        epoch=bumped,
    )
