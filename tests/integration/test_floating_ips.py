"""Floating IPs with pyroute2 in real network namespaces."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from bgplb.agent.floating import FloatingIPs
from bgplb_lab.daemons import wait_for
from bgplb_lab.netns import Segment, segment


@pytest.fixture
def seg() -> Iterator[Segment]:
    with segment(f"ft{os.getpid() % 10000}-") as s:
        s.add_host("n1", "192.0.2.11/24")
        s.add_host("n2", "192.0.2.12/24")
        s.add_host("peer", "192.0.2.1/24")
        yield s


def _addresses(seg: Segment, host: str) -> dict[str, str]:
    """address/prefix → label."""
    out = json.loads(seg.hosts[host].exec("ip", "-j", "addr", "show", "eth0"))
    return {
        f"{a['local']}/{a['prefixlen']}": a.get("label", "")
        for a in out[0]["addr_info"]
        if a["family"] == "inet"
    }


def _mac(seg: Segment, host: str) -> str:
    return str(json.loads(seg.hosts[host].exec("ip", "-j", "link", "show", "eth0"))[0]["address"])


def test_plumbs_a_labelled_slash32_on_the_subnets_interface(seg: Segment) -> None:
    ips = FloatingIPs(seg.hosts["n1"].netns)
    try:
        result = ips.sync([IPv4Address("192.0.2.100"), IPv4Address("203.0.113.1")])
        assert result.added == (IPv4Address("192.0.2.100"),)
        assert result.unplaceable == {
            IPv4Address("203.0.113.1"): "no interface of this node has an address in its subnet"
        }
        assert _addresses(seg, "n1")["192.0.2.100/32"] == "eth0:bgplb"
        assert ips.node_addresses()[0].with_prefixlen == "192.0.2.11/24"
        assert IPv4Address("192.0.2.100") not in {a.ip for a in ips.node_addresses()}
    finally:
        ips.close()


def test_never_touches_addresses_it_did_not_add(seg: Segment) -> None:
    seg.hosts["n1"].exec("ip", "addr", "add", "192.0.2.200/32", "dev", "eth0")
    ips = FloatingIPs(seg.hosts["n1"].netns)
    try:
        ips.sync([IPv4Address("192.0.2.100")])
        ips.sync([])
        assert set(_addresses(seg, "n1")) == {"192.0.2.11/24", "192.0.2.200/32"}
    finally:
        ips.close()


def test_resync_on_start_adopts_its_own_and_converges(seg: Segment) -> None:
    first = FloatingIPs(seg.hosts["n1"].netns)
    first.sync([IPv4Address("192.0.2.100"), IPv4Address("192.0.2.101")])
    first.close()
    restarted = FloatingIPs(seg.hosts["n1"].netns)
    try:
        assert set(restarted.ours()) == {IPv4Address("192.0.2.100"), IPv4Address("192.0.2.101")}
        result = restarted.sync([IPv4Address("192.0.2.101"), IPv4Address("192.0.2.102")])
        assert result.removed == (IPv4Address("192.0.2.100"),)
        assert result.added == (IPv4Address("192.0.2.102"),)
    finally:
        restarted.close()


@pytest.mark.parametrize("raw_sockets", [True, False], ids=["gratuitous-arp", "net-admin-only"])
def test_a_moved_ip_moves_the_neighbours_arp_entry(seg: Segment, raw_sockets: bool) -> None:
    """With CAP_NET_RAW a gratuitous ARP; without (the chart gives NET_ADMIN only)
    ARP requests from the new address to every neighbour the node knows."""
    ip = IPv4Address("192.0.2.100")
    on_n1 = FloatingIPs(seg.hosts["n1"].netns)
    on_n2 = FloatingIPs(seg.hosts["n2"].netns, raw_sockets=raw_sockets)
    try:
        on_n1.sync([ip])
        seg.hosts["peer"].exec("ping", "-c1", "-W1", str(ip))
        seg.hosts["n2"].exec("ping", "-c1", "-W1", "192.0.2.1")  # n2 knows the peer

        def entry() -> str:
            out = json.loads(seg.hosts["peer"].exec("ip", "-j", "neigh", "show", str(ip)))
            return str(out[0]["lladdr"]) if out else ""

        assert entry() == _mac(seg, "n1")
        on_n1.sync([])
        on_n2.sync([ip])
        # The peer sent nothing: only n2's announcement can have moved its entry.
        wait_for("the peer's ARP entry to point at n2", lambda: entry() == _mac(seg, "n2"), 5)
    finally:
        on_n1.close()
        on_n2.close()


def test_node_addresses_carry_only_what_placement_needs(seg: Segment, tmp_path: Path) -> None:
    """kube-proxy's IPVS mode puts every Service's /32 on kube-ipvs0: thousands of
    addresses. The Lease carries only subnets (a /32 places nothing), so its
    annotation stays small however many Services there are."""
    n1 = seg.hosts["n1"]
    # No dummy module here: a veth stands in for the dummy interface kube-proxy makes.
    n1.exec("ip", "link", "add", "kube-ipvs0", "type", "veth", "peer", "name", "ipvs-peer")
    batch = tmp_path / "ipvs.batch"
    batch.write_text(
        "".join(f"addr add 10.96.{i // 250}.{i % 250 + 1}/32 dev kube-ipvs0\n" for i in range(5000))
    )
    n1.exec("ip", "-batch", str(batch), timeout=120)
    n1.exec("ip", "addr", "add", "198.51.100.5/26", "dev", "kube-ipvs0")  # a second subnet
    ips = FloatingIPs(n1.netns)
    try:
        ips.sync([IPv4Address("192.0.2.100")])
        published = [a.with_prefixlen for a in ips.node_addresses()]
        assert published == ["192.0.2.11/24", "198.51.100.5/26"]
        assert len(",".join(published)) < 1024
    finally:
        ips.close()
