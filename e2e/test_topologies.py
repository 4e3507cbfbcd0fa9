"""Each of the seed's three example configurations, on the lab: the sessions it
implies are Established, the control-plane VIP goes to the peers its nodes are mapped
to, and the demo Service VIP is reachable through both ToRs by ECMP."""

from __future__ import annotations

import pytest

from bgplb_lab import drills
from bgplb_lab.kubelets import KubeletLab
from bgplb_lab.topology import (
    BIRD_IP,
    CONTROL_PLANE_VIP,
    DEMO_VIP,
    FLOATING_IPS,
    FRR_IP,
    NODES,
    Lab,
)
from e2e.conftest import build, teardown

CP_NODES = [n for n in NODES if n.control_plane]
LB_IPS = {n.ip for n in CP_NODES}


def expected_control_plane(example: int) -> tuple[set[str], dict[str, set[str]]]:
    """Control-plane session names, and the control-plane VIP's next hops per ToR."""
    if example == 1:
        names = {f"{tor}-{n.name}" for tor in (FRR_IP, BIRD_IP) for n in CP_NODES}
        return names, {"frr": LB_IPS, "bird": LB_IPS}
    names = {f"{FRR_IP}-n1", f"{FRR_IP}-n2", f"{BIRD_IP}-n3"}
    return names, {"frr": {"192.0.2.11", "192.0.2.12"}, "bird": {"192.0.2.13"}}


def check(lab: Lab, example: int) -> None:
    sessions = lab.get("bgpsessions")["items"]
    assert all(s["status"]["state"] == "Established" for s in sessions), lab.kubectl(
        "get", "bgpsessions"
    )
    cp_names, cp_hops = expected_control_plane(example)
    control_plane = {s["metadata"]["name"] for s in sessions if s["spec"]["type"] == "ControlPlane"}
    assert control_plane == cp_names
    data_plane = [s for s in sessions if s["spec"]["type"] == "Service"]
    # Every floating IP peers with both ToRs: with the control-plane peers (examples
    # 1 and 2: no BGPPeer objects) or with the labelled BGPPeers (example 3).
    assert sorted((s["spec"]["localIP"], s["spec"]["peerIP"]) for s in data_plane) == sorted(
        (ip, tor) for ip in FLOATING_IPS for tor in (FRR_IP, BIRD_IP)
    )
    assert lab.tor_next_hops(CONTROL_PLANE_VIP) == cp_hops
    assert lab.tor_next_hops(DEMO_VIP) == {"frr": LB_IPS, "bird": LB_IPS}
    answers = lab.client_requests(30)
    # ECMP over the nodes, by flow, then kube-proxy to Pods on any node.
    served = {line.split(" on ")[-1] for line in answers.splitlines() if "answered by" in line}
    assert len(served) >= 2, answers
    assert "FAILED" not in answers


@pytest.mark.parametrize("example", [1, 2])
def test_seed_example(example: int) -> None:
    lab = build(example)
    try:
        lab.up()
        drills.wait_stable(lab)
        check(lab, example)
    finally:
        teardown(lab)


def test_seed_example_3_separate_control_plane_and_data_plane_peers(lab: Lab) -> None:
    drills.wait_stable(lab)  # the shared lab, after whatever drill ran before
    check(lab, 3)
    peers = {p["metadata"]["name"] for p in lab.get("bgppeers")["items"]}
    assert peers == {"tor-frr", "tor-bird"}


def test_kubelets_and_pods_reach_the_api_server_through_the_control_plane_vip(lab: Lab) -> None:
    """The order the seed needs: the bgpadvertiser static Pods (mirror Pods: the
    kubelet ran them from its manifests, with no API server) advertise the VIP, and
    everything else reaches the API server through it."""
    assert isinstance(lab, KubeletLab)
    for node in NODES:
        kubeconfig = (lab.kube_node(node.name).dir / "kubeconfig").read_text()
        assert f"server: https://{CONTROL_PLANE_VIP}:443" in kubeconfig
    endpoints = lab.get_json("endpoints", "kubernetes", "-n", "default")
    assert [a["ip"] for a in endpoints["subsets"][0]["addresses"]] == [CONTROL_PLANE_VIP]
    pods = lab.get_json(
        "pods", "-n", "kube-system", "-l", "app.kubernetes.io/component=bgpadvertiser"
    )
    mirrors = {
        p["spec"]["nodeName"]
        for p in pods["items"]
        if "kubernetes.io/config.mirror" in p["metadata"].get("annotations", {})
        and p["status"]["phase"] == "Running"
    }
    assert mirrors == {n.name for n in CP_NODES}


def test_gobgpd_grpc_is_reachable_only_through_its_socket(lab: Lab) -> None:
    """On every node, as a host-network process would: nothing listens for gRPC on
    TCP (it could inject routes or read MD5 passwords); the speakers' sockets are in
    host directories that only the agent and the speakers mount, and are root's."""
    assert isinstance(lab, KubeletLab)
    probe = (
        "import socket\n"
        "for port in (50051, 50052):\n"
        "    s = socket.socket()\n"
        "    s.settimeout(2)\n"
        "    print(port, s.connect_ex(('127.0.0.1', port)))\n"
    )
    for node in NODES:
        kube = lab.kube_node(node.name)
        out = kube.exec("python3", "-c", probe)
        assert all(line.split()[1] != "0" for line in out.splitlines()), (node.name, out)
        listing = kube.exec("stat", "-c", "%F %U %a", "/run/bgplb/speaker/gobgpd.sock")
        assert listing.split() == ["socket", "root", "755"], (node.name, listing)
        if node.control_plane:
            cp = kube.exec("stat", "-c", "%F %U", "/run/bgplb/control-plane/gobgpd.sock")
            assert cp.split() == ["socket", "root"], (node.name, cp)
