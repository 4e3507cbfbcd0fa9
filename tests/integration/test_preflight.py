"""`bgplb preflight` against FRR: pass, and each failure named by its cause."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from bgplb.preflight import diagnose
from bgplb_lab.daemons import BIRD, FRR
from bgplb_lab.netns import Host, run, segment

VIP = "198.51.100.10"


@dataclass
class Net:
    frr: FRR
    node: Host
    work: Path
    bird: BIRD

    def preflight(self, peers: list[tuple[str, int]]) -> tuple[int, str]:
        config = self.work / "preflight.conf"
        config.write_text(
            "localIP: 192.0.2.11\nlocalASN: 65001\npeers:\n"
            + "".join(f"- peerIP: {ip}\n  peerASN: {asn}\n" for ip, asn in peers)
        )
        done = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.node.netns,
                sys.executable,
                "-m",
                "bgplb.cli",
                "preflight",
                "--config",
                str(config),
                "--advertise-ip",
                VIP,
                "--timeout",
                "20",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    work = Path(tempfile.mkdtemp(prefix="bgplb-test-"))
    work.chmod(0o755)
    with segment(f"bp{os.getpid() % 10000}-") as seg:
        frr = FRR(
            seg.add_host("tor", "192.0.2.1/24"), work, 65000, IPv4Network("192.0.2.0/24"), 65001
        ).start()
        bird = BIRD(
            seg.add_host("tor2", "192.0.2.2/24"), work, 65000, IPv4Network("192.0.2.0/24"), 65001
        ).start()
        seg.add_host("nobgp", "192.0.2.3/24")  # a host, but no BGP speaker on it
        node = seg.add_host("n1", "192.0.2.11/24")
        try:
            yield Net(frr, node, work, bird)
        finally:
            bird.stop()
            frr.stop()
            shutil.rmtree(work, ignore_errors=True)


def test_pass_and_connection_refused(net: Net) -> None:
    code, out = net.preflight([("192.0.2.1", 65000), ("192.0.2.3", 65000)])
    assert code == 1, out
    assert "192.0.2.11 -> 192.0.2.1: PASS: Established; the peer routes the VIP back here" in out
    assert "192.0.2.11 -> 192.0.2.3: FAIL: connection refused" in out
    assert "preflight failed for 1 of 2 peer(s)" in out
    # Nothing is left behind: the VIP is off the node, no gobgpd runs.
    assert VIP not in net.node.exec("ip", "addr", "show", "lo")
    assert run("ip", "netns", "pids", net.node.netns).split() == []


def test_asn_mismatch(net: Net) -> None:
    code, out = net.preflight([("192.0.2.1", 65099)])
    assert code == 1
    assert "192.0.2.11 -> 192.0.2.1: FAIL: ASN mismatch: " in out
    assert "as number mismatch expected 65099, received 65000" in out


def test_no_route_back_when_the_peer_rejects_the_vip(net: Net) -> None:
    net.frr.vtysh_config(
        "route-map REJECT deny 10",
        "router bgp 65000",
        "address-family ipv4 unicast",
        "neighbor NODES route-map REJECT in",
    )
    try:
        code, out = net.preflight([("192.0.2.1", 65000)])
    finally:
        net.frr.vtysh_config(
            "router bgp 65000",
            "address-family ipv4 unicast",
            "no neighbor NODES route-map REJECT in",
        )
    assert code == 1
    assert "192.0.2.11 -> 192.0.2.1: FAIL: no route back" in out


def test_diagnose_reads_gobgpd_log_lines() -> None:
    log = (
        'time="t" level=debug msg="failed to connect" '
        'Error="dial tcp 192.0.2.11:0->192.0.2.3:179: connect: connection refused" '
        "Key=192.0.2.3 Topic=Peer\n"
    )
    assert diagnose(log, IPv4Address("192.0.2.3")).startswith("connection refused")  # type: ignore[union-attr]
    assert diagnose(log, IPv4Address("192.0.2.1")) is None


def test_pairs_from_a_load_balancer_manifest_with_frr_and_bird(net: Net) -> None:
    manifest = net.work / "bgplb.yaml"
    manifest.write_text(
        "apiVersion: networking.bgplb.io/v1\nkind: BGPLoadBalancer\n"
        "metadata: {name: default, namespace: kube-system}\n"
        "spec:\n  localASN: 65001\n  controlPlane:\n    vip: 198.51.100.10\n    peers:\n"
        "    - {ip: 192.0.2.1, asn: 65000, controlPlaneNodes: [192.0.2.11]}\n"
        "    - {ip: 192.0.2.2, asn: 65000}\n"
        "    - {ip: 192.0.2.3, asn: 65000, controlPlaneNodes: [192.0.2.12]}\n"
    )
    done = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            net.node.netns,
            sys.executable,
            "-m",
            "bgplb.cli",
            "preflight",
            "--config",
            str(manifest),
            "--node-ip",
            "192.0.2.11",
            "--timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "192.0.2.11 -> 192.0.2.1: PASS" in out  # FRR
    assert "192.0.2.11 -> 192.0.2.2: PASS" in out  # BIRD
    assert "192.0.2.3" not in out  # mapped to another control-plane node
