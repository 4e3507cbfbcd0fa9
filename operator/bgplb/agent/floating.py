"""Floating IPs on the node's interfaces, with pyroute2.

Each floating IP goes on as a /32 on the interface that holds the node's address in
the same subnet (a /32 adds no prefix route and leaves the node's routing alone),
labelled `<ifname>:bgplb` so the agent knows its own and never touches anyone
else's. A gratuitous ARP follows every add, so the segment learns the new owner at
once instead of when old ARP entries expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns

log = logging.getLogger(__name__)

LABEL_SUFFIX = ":bgplb"
MAX_PUBLISHED = 64
"""Subnets a Lease carries at most (about 1.3 kB of annotation)."""
ETH_P_ARP = 0x0806


def label_for(ifname: str) -> str:
    # Labels are at most 15 characters (IFNAMSIZ - 1).
    return ifname[: 15 - len(LABEL_SUFFIX)] + LABEL_SUFFIX


@dataclass(frozen=True)
class SyncResult:
    added: tuple[IPv4Address, ...] = ()
    removed: tuple[IPv4Address, ...] = ()
    unplaceable: dict[IPv4Address, str] = field(default_factory=dict)
    """Desired IPs no interface of this node can hold, and why."""


# Neighbour states (linux/neighbour.h).
NUD_REACHABLE, NUD_STALE, NUD_DELAY, NUD_PROBE, NUD_PERMANENT = 0x02, 0x04, 0x08, 0x10, 0x80
DISCARD_PORT = 9


def gratuitous_arp(ifname: str, mac: bytes, ip: IPv4Address) -> bytes:
    """An ARP request announcing `ip` at `mac` (sender IP = target IP), broadcast."""
    addr = ip.packed
    ethernet = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + addr + b"\x00" * 6 + addr
    return ethernet + arp


class FloatingIPs:
    """The floating IPs of one node, in the agent's network namespace (or `netns`)."""

    def __init__(self, netns: str | None = None, raw_sockets: bool = True) -> None:
        self.netns = netns
        self.raw_sockets = raw_sockets
        self._ipr: Any = IPRoute(netns=netns) if netns else IPRoute()

    def close(self) -> None:
        self._ipr.close()

    def _links(self) -> dict[int, tuple[str, bytes]]:
        out = {}
        for link in self._ipr.get_links():
            mac = link.get_attr("IFLA_ADDRESS") or "00:00:00:00:00:00"
            out[link["index"]] = (link.get_attr("IFLA_IFNAME"), bytes.fromhex(mac.replace(":", "")))
        return out

    def _addresses(self) -> list[tuple[int, IPv4Interface, str]]:
        """(interface index, address/prefix, label) of every IPv4 address."""
        return [
            (
                a["index"],
                IPv4Interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"),
                a.get_attr("IFA_LABEL") or "",
            )
            for a in self._ipr.get_addr(family=socket.AF_INET)
        ]

    def ours(self) -> dict[IPv4Address, int]:
        """Floating IPs this agent plumbed → interface index."""
        return {
            iface.ip: index
            for index, iface, label in self._addresses()
            if label.endswith(LABEL_SUFFIX) and iface.network.prefixlen == 32
        }

    def node_addresses(self) -> list[IPv4Interface]:
        """What placement needs of the node's addresses: one per subnet, at most
        MAX_PUBLISHED. A /32 (a floating IP, each Service VIP kube-proxy's IPVS mode
        puts on kube-ipvs0, a per-Pod route) names no subnet a floating IP could
        join, and thousands of them would overflow the Lease's annotation."""
        found: dict[IPv4Network, IPv4Interface] = {}
        for _, iface, label in self._addresses():
            if label.endswith(LABEL_SUFFIX) or iface.ip.is_loopback:
                continue
            if iface.network.prefixlen < 32:
                found.setdefault(iface.network, iface)
        if len(found) > MAX_PUBLISHED:
            log.warning(
                "more subnets than a Lease carries; publishing the first",
                extra={"subnets": len(found), "published": MAX_PUBLISHED},
            )
        return list(found.values())[:MAX_PUBLISHED]

    def _home(self, ip: IPv4Address) -> tuple[int | None, str]:
        homes = [
            index
            for index, iface, label in self._addresses()
            if not label.endswith(LABEL_SUFFIX)
            and ip in iface.network
            and iface.network.prefixlen < 32
        ]
        if not homes:
            return None, "no interface of this node has an address in its subnet"
        return homes[0], ""

    def sync(self, desired: Iterable[IPv4Address]) -> SyncResult:
        """Plumb exactly `desired` (of the addresses we own); announce new ones."""
        wanted = set(desired)
        current = self.ours()
        links = self._links()
        added: list[IPv4Address] = []
        removed: list[IPv4Address] = []
        unplaceable: dict[IPv4Address, str] = {}
        for ip, index in sorted(current.items()):
            if ip not in wanted:
                self._ipr.addr("del", index=index, address=str(ip), prefixlen=32)
                removed.append(ip)
                log.info("floating IP removed", extra={"ip": str(ip), "interface": links[index][0]})
        for ip in sorted(wanted - set(current)):
            home, why = self._home(ip)
            if home is None:
                unplaceable[ip] = why
                continue
            ifname, mac = links[home]
            self._ipr.addr(
                "add", index=home, address=str(ip), prefixlen=32, label=label_for(ifname)
            )
            added.append(ip)
            self.announce(home, ifname, mac, ip)
            log.info("floating IP added", extra={"ip": str(ip), "interface": ifname})
        return SyncResult(tuple(added), tuple(removed), unplaceable)

    def announce(self, index: int, ifname: str, mac: bytes, ip: IPv4Address) -> None:
        """Tell the segment `ip` is here now: a gratuitous ARP where raw sockets are
        allowed (CAP_NET_RAW), else ARP requests from `ip` to every known neighbour."""
        if self.raw_sockets:
            try:
                with self._in_netns(), socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
                    sock.bind((ifname, 0))
                    sock.send(gratuitous_arp(ifname, mac, ip))
                return
            except PermissionError:
                self.raw_sockets = False
                log.info("no CAP_NET_RAW: announcing floating IPs by ARP requests")
        self.announce_by_request(index, ip)

    def announce_by_request(self, index: int, ip: IPv4Address) -> list[str]:
        """With NET_ADMIN only: forget each neighbour's ARP entry, then send it a UDP
        datagram from `ip`. The kernel asks for the neighbour's MAC with `ip` as the
        sender, and a host answering a request for its own address takes the sender's
        address and MAC into its table — a gratuitous ARP's effect, on every host this
        node has talked to (the ToRs among them). Returns the neighbours told."""
        usable = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT
        told = []
        for neighbour in self._ipr.get_neighbours(family=socket.AF_INET, ifindex=index):
            dst = neighbour.get_attr("NDA_DST")
            if not dst or not neighbour["state"] & usable or neighbour["state"] & NUD_PERMANENT:
                continue
            with contextlib.suppress(Exception):
                self._ipr.neigh("del", dst=dst, ifindex=index)
            with self._in_netns(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((str(ip), 0))
                with contextlib.suppress(OSError):
                    sock.sendto(b"", (dst, DISCARD_PORT))
            told.append(dst)
        return told

    @contextlib.contextmanager
    def _in_netns(self) -> Iterator[None]:
        # A raw socket belongs to the namespace it was made in; the agent itself
        # runs in the node's namespace, tests drive a namespace from outside.
        if self.netns is None:
            yield
            return
        pyroute2_netns.pushns(self.netns)
        try:
            yield
        finally:
            pyroute2_netns.popns()


class NetlinkThread:
    """FloatingIPs on a thread of its own.

    pyroute2's synchronous API drives an asyncio loop of its own, which cannot run
    inside the agent's loop; one dedicated thread also keeps netlink calls in order.
    """

    def __init__(self, netns: str | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")
        self._ips = self._pool.submit(FloatingIPs, netns).result()

    async def sync(self, desired: Iterable[IPv4Address]) -> SyncResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._ips.sync, frozenset(desired))

    async def node_addresses(self) -> list[IPv4Interface]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._ips.node_addresses)

    async def ours(self) -> frozenset[IPv4Address]:
        loop = asyncio.get_running_loop()
        return frozenset(await loop.run_in_executor(self._pool, self._ips.ours))

    def close(self) -> None:
        self._pool.submit(self._ips.close).result()
        self._pool.shutdown()
