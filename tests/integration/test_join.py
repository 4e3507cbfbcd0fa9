"""Everything together: kube-apiserver and bgplb-controller on a control-plane host,
bgplb-agent + gobgpd on three nodes, FRR and BIRD ToRs — all in network namespaces.
`kubectl get bgpsessions` must show the seed's columns with every session Established,
and both ToRs must carry the Service VIP with every node as a next hop."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

import pytest
import yaml

from bgplb_lab.daemons import BIRD, FRR, GoBGPd, stop_processes, wait_for
from bgplb_lab.kube import KubeAPI, free_port
from bgplb_lab.manifests import gateway, load_balancer, peer, service
from bgplb_lab.netns import segment

NS = "kube-system"
NODES = {"n1": "192.0.2.11", "n2": "192.0.2.12", "n3": "192.0.2.13"}
VIP = "203.0.113.10/32"
CONFIG = [
    load_balancer(
        peerSelector={"tor": "true"},
        loadBalancerNodeSelector={},
        addressPools=[{"name": "lab", "addresses": ["203.0.113.10-203.0.113.20"]}],
    ),
    gateway("192.0.2.100", "192.0.2.101"),
    *[
        peer(name, {"tor": "true"}, peerASN=65000, peerIP=ip, sessions=2)
        for name, ip in (("tor-frr", "192.0.2.1"), ("tor-bird", "192.0.2.2"))
    ],
    service("web"),
]


@dataclass
class Lab:
    api: KubeAPI
    frr: FRR
    bird: BIRD


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    work = Path(tempfile.mkdtemp(prefix="bgplb-test-"))
    work.chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []
    with segment(f"bj{os.getpid() % 10000}-") as seg:
        cp = seg.add_host("cp", "192.0.2.250/24")
        frr = FRR(
            seg.add_host("tor1", "192.0.2.1/24"), work, 65000, IPv4Network("192.0.2.0/24"), 65001
        ).start()
        bird = BIRD(
            seg.add_host("tor2", "192.0.2.2/24"), work, 65000, IPv4Network("192.0.2.0/24"), 65001
        ).start()
        api = KubeAPI(work / "kube", host="192.0.2.250", port=free_port(), netns=cp.netns)
        try:
            api.start()
            api.install_crds()
            for name, ip in NODES.items():
                api.add_node(name, ip)
            api.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(CONFIG))
            procs.append(
                cp.popen(
                    api.controller_command(NS),
                    work / "controller.log",
                )
            )
            for name, ip in NODES.items():
                host = seg.add_host(name, f"{ip}/24")
                GoBGPd(host, work).start()
                procs.append(
                    host.popen(
                        api.agent_command(NS, name, ip),
                        work / f"agent-{name}.log",
                    )
                )
            yield Lab(api, frr, bird)
        finally:
            stop_processes(*procs, timeout=20)
            frr.stop()
            bird.stop()
            api.stop()
            if os.environ.get("BGPLB_KEEP_LOGS") is None:
                shutil.rmtree(work, ignore_errors=True)


def test_kubectl_shows_established_sessions_and_tors_carry_the_vip(lab: Lab) -> None:
    def all_established() -> list[list[str]] | None:
        rows = [line.split() for line in lab.api.kubectl("get", "bgpsessions").splitlines()]
        if len(rows) == 5 and all(r[5] == "Established" for r in rows[1:]):
            return rows
        return None

    try:
        rows = wait_for("4 BGPSessions Established", all_established, timeout=90)
    except TimeoutError:
        print(lab.api.kubectl("get", "bgpsessions,ngg,leases", "-o", "wide"))
        raise
    print("\n" + lab.api.kubectl("get", "bgpsessions"))
    assert " ".join(rows[0]) == "NAME LOCAL ASN PEER ASN LOCAL IP PEER IP STATE LAST REPORT"
    holders = json.loads(lab.api.kubectl("get", "ngg", "default", "-o", "json"))["status"][
        "floatingIPs"
    ]
    expected_rows = {
        (f"{peer}-{node}", "65001", "65000", ip, peer_ip)
        for ip, node in holders.items()
        for peer, peer_ip in (("tor-frr", "192.0.2.1"), ("tor-bird", "192.0.2.2"))
    }
    assert {tuple(r[:5]) for r in rows[1:]} == expected_rows

    hops = set(NODES.values())
    wait_for("VIP on FRR", lambda: lab.frr.next_hops(VIP) == hops, timeout=30)
    wait_for("VIP on BIRD", lambda: lab.bird.next_hops(VIP) == hops, timeout=30)
    wait_for("ECMP in FRR's kernel", lambda: lab.frr.kernel_next_hops(VIP) == hops)
    print(lab.api.kubectl("get", "bgpadvertisedroutes"))
    ingress = json.loads(lab.api.kubectl("get", "service", "web", "-n", "default", "-o", "json"))[
        "status"
    ]["loadBalancer"]["ingress"]
    assert [i["ip"] for i in ingress] == ["203.0.113.10"]
    peers = lab.api.kubectl("get", "bgppeers")
    assert all(line.split()[4:6] == ["2", "2"] for line in peers.splitlines()[1:]), peers
