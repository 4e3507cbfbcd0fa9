"""bgplb-agent processes in node namespaces, fed by the real planner's output, with
real gobgpd and FRR/BIRD ToRs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgplb.api import AddressPool, BGPLoadBalancerSpec, BGPPeerSpec, NetworkGatewayGroupSpec
from bgplb.core.objects import gateway_status, route_objects, session_objects
from bgplb.core.plan import DesiredState, plan, with_decisions
from bgplb.core.snapshot import Node, Peer, Service, Snapshot
from bgplb_lab.daemons import wait_for
from tests.integration.conftest import CLUSTER_ASN, TOR_ASN, Fabric

VIP = "203.0.113.10/32"
NODE_IPS = {"n1": "192.0.2.11", "n2": "192.0.2.12", "n3": "192.0.2.13"}


def snapshot(services: tuple[Service, ...] = (Service("default", "web"),)) -> Snapshot:
    lb = BGPLoadBalancerSpec(
        local_asn=CLUSTER_ASN,
        peer_selector={"tor": "true"},
        address_pools=[AddressPool(name="lab", addresses=["203.0.113.10-203.0.113.20"])],
        load_balancer_node_selector={},
    )
    peers = tuple(
        Peer(
            name,
            {"tor": "true"},
            BGPPeerSpec(
                local_asn=CLUSTER_ASN,
                peer_asn=TOR_ASN,
                peer_ip=IPv4Address(ip),
                sessions=2,
                connect_retry_seconds=1,
            ),
        )
        for name, ip in (("tor-frr", "192.0.2.1"), ("tor-bird", "192.0.2.2"))
    )
    nodes = tuple(Node(n, (IPv4Interface(f"{ip}/24"),)) for n, ip in NODE_IPS.items())
    gateway = NetworkGatewayGroupSpec(
        floating_ips=[IPv4Address("192.0.2.100"), IPv4Address("192.0.2.101")]
    )
    return Snapshot(lb, gateway, peers, nodes, services)


@dataclass
class Cluster:
    fabric: Fabric
    desired_file: Path
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    state: Snapshot = field(default_factory=snapshot)
    plan: DesiredState | None = None

    def publish(self, s: Snapshot, extra: Sequence[dict[str, Any]] = ()) -> DesiredState:
        d = plan(s)
        self.state, self.plan = with_decisions(s, d), d
        ngg = {
            "apiVersion": "networking.bgplb.io/v1",
            "kind": "NetworkGatewayGroup",
            "metadata": {"name": "default", "namespace": "kube-system"},
            "spec": {"floatingIPs": ["192.0.2.100", "192.0.2.101"]},
            "status": gateway_status(d).model_dump(mode="json", by_alias=True),
        }
        lb = {
            "apiVersion": "networking.bgplb.io/v1",
            "kind": "BGPLoadBalancer",
            "metadata": {"name": "default", "namespace": "kube-system"},
            "spec": s.load_balancer.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        docs = [
            *session_objects(d, "kube-system"),
            *route_objects(d, "kube-system"),
            ngg,
            lb,
            *extra,
        ]
        tmp = self.desired_file.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump_all(docs))
        tmp.replace(self.desired_file)
        return d

    def start_agent(self, node: str) -> None:
        host = self.fabric.nodes[node]
        self.agents[node] = host.popen(
            [
                sys.executable,
                "-m",
                "bgplb.agent",
                "--node",
                node,
                "--node-ip",
                NODE_IPS[node],
                "--desired-file",
                str(self.desired_file),
                "--status-file",
                str(self.status_file(node)),
                "--speaker",
                "127.0.0.1:50051",
                "--status-refresh",
                "3600",
            ],
            self.fabric.workdir / f"agent-{node}.log",
        )

    def stop_agent(self, node: str) -> None:
        proc = self.agents.pop(node)
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)

    def status_file(self, node: str) -> Path:
        return self.fabric.workdir / f"status-{node}.json"

    def status(self, node: str) -> dict[str, Any]:
        try:
            return dict(json.loads(self.status_file(node).read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def holders(self) -> dict[str, str]:
        assert self.plan is not None
        return {str(ip): n for ip, n in self.plan.floating_ips.holders.items()}


@pytest.fixture(scope="module")
def cluster(fabric: Fabric) -> Iterator[Cluster]:
    c = Cluster(fabric, fabric.workdir / "desired.yaml")
    c.publish(snapshot())
    for node in NODE_IPS:
        c.start_agent(node)
    try:
        yield c
    finally:
        for node in list(c.agents):
            c.stop_agent(node)


def all_established(c: Cluster) -> bool:
    sources = set(c.holders())
    frr = set(c.fabric.frr.established())
    bird = c.fabric.bird.birdc("show protocols all")
    return (
        sources <= frr
        and all(f"Neighbor address: {ip}" in bird for ip in sources)
        and (bird.count("Established") >= len(sources))
    )


def test_sessions_established_and_vip_on_both_tors(cluster: Cluster) -> None:
    wait_for("sessions from both floating IPs on FRR and BIRD", lambda: all_established(cluster))
    expected = set(NODE_IPS.values())
    wait_for("FRR next hops", lambda: cluster.fabric.frr.next_hops(VIP) == expected)
    wait_for("BIRD next hops", lambda: cluster.fabric.bird.next_hops(VIP) == expected)
    wait_for("ECMP in FRR's kernel", lambda: cluster.fabric.frr.kernel_next_hops(VIP) == expected)
    wait_for("ECMP in BIRD's kernel", lambda: cluster.fabric.bird.kernel_next_hops(VIP) == expected)


def test_status_follows_watch_events(cluster: Cluster) -> None:
    wait_for("sessions", lambda: all_established(cluster))
    # Refresh is an hour and nothing else changes: only WatchEvent can have reported.
    for node in set(cluster.holders().values()):

        def reported(n: str = node) -> bool:
            statuses = cluster.status(n)
            return bool(statuses) and all(
                s["state"] == "Established"
                and s["advertisedRoutes"] == [VIP]
                and s["lastReportTime"]
                for s in statuses.values()
            )

        wait_for(f"Established in {node}'s status", reported, timeout=5)


def _frr_counters(c: Cluster) -> dict[str, tuple[int, int, int]]:
    """Per floating IP: sessions FRR saw come up and go down (a flap moves both), and
    UPDATE messages it received (any withdrawal or re-advertisement moves it)."""
    out = {}
    for ip in c.holders():
        peer = c.fabric.frr.json(f"show bgp neighbors {ip}")[ip]
        updates = peer["messageStats"]["updatesRecv"]
        out[ip] = (peer["connectionsEstablished"], peer["connectionsDropped"], updates)
    return out


def test_agent_restart_causes_no_flap(cluster: Cluster) -> None:
    wait_for("sessions", lambda: all_established(cluster))
    wait_for("routes", lambda: len(cluster.fabric.frr.next_hops(VIP)) == 3)
    time.sleep(1)
    before = _frr_counters(cluster)
    bird_before = cluster.fabric.bird.birdc("show protocols")
    hops_before = cluster.fabric.frr.next_hops(VIP)
    for node in NODE_IPS:
        cluster.stop_agent(node)
        cluster.start_agent(node)
    time.sleep(4)  # let the new agents read, diff and (not) apply
    assert _frr_counters(cluster) == before
    assert cluster.fabric.bird.birdc("show protocols") == bird_before
    assert cluster.fabric.frr.next_hops(VIP) == hops_before


def test_withdraw_and_readvertise(cluster: Cluster) -> None:
    cluster.publish(replace(cluster.state, services=()))
    wait_for("FRR withdraw", lambda: not cluster.fabric.frr.next_hops(VIP))
    wait_for("BIRD withdraw", lambda: not cluster.fabric.bird.next_hops(VIP))
    cluster.publish(replace(cluster.state, services=(Service("default", "web"),)))
    wait_for("FRR route back", lambda: len(cluster.fabric.frr.next_hops(VIP)) == 3)


def test_only_slash32s_inside_the_pools_are_advertised(cluster: Cluster) -> None:
    """A route object written by mistake (or by a hand other than the controller's)
    must not reach the fabric: not a /24, not a /32 outside every pool."""
    wait_for("the VIP on FRR", lambda: len(cluster.fabric.frr.next_hops(VIP)) == 3)

    def rogue(prefix: str) -> dict[str, Any]:
        return {
            "apiVersion": "networking.bgplb.io/v1",
            "kind": "BGPAdvertisedRoute",
            "metadata": {"name": f"rogue-{prefix.replace('/', '-')}", "namespace": "kube-system"},
            "spec": {
                "prefix": prefix,
                "nextHops": list(NODE_IPS.values()),
                "service": {"namespace": "default", "name": "rogue"},
            },
        }

    bad = ["198.51.100.0/24", "198.51.100.7/32"]
    cluster.publish(cluster.state, extra=[rogue(p) for p in bad])
    try:
        # The agents with Service sessions (the floating IPs' holders) refuse them;
        # the others advertise nothing and plan no routes.
        holders = set(cluster.holders().values())
        wait_for(
            "every holder's agent to refuse them",
            lambda: all(
                "refusing to advertise routes"
                in (cluster.fabric.workdir / f"agent-{n}.log").read_text()
                for n in holders
            ),
        )
        time.sleep(2)  # what an agent advertises reaches FRR within a second
        for prefix in bad:
            assert not cluster.fabric.frr.next_hops(prefix), prefix
            assert not cluster.fabric.bird.next_hops(prefix), prefix
        assert len(cluster.fabric.frr.next_hops(VIP)) == 3  # the good one still is
    finally:
        cluster.publish(cluster.state)


def test_gobgpd_restart_is_replayed_by_the_agent(cluster: Cluster) -> None:
    wait_for("sessions", lambda: all_established(cluster))
    node = sorted(set(cluster.holders().values()))[0]
    source = next(ip for ip, n in cluster.holders().items() if n == node)
    cluster.fabric.gobgpd[node].kill()
    wait_for("FRR to lose the session", lambda: source not in cluster.fabric.frr.established())
    cluster.fabric.gobgpd[node].start()
    wait_for("session replayed", lambda: source in cluster.fabric.frr.established(), timeout=40)
    wait_for("routes replayed", lambda: len(cluster.fabric.frr.next_hops(VIP)) == 3)


def test_floating_ip_moves_when_its_node_goes(cluster: Cluster) -> None:
    wait_for("sessions", lambda: all_established(cluster))
    holders = cluster.holders()
    lost = holders["192.0.2.100"]
    nodes = tuple(replace(n, ready=n.name != lost) for n in cluster.state.nodes)
    started = time.monotonic()
    d = cluster.publish(replace(cluster.state, nodes=nodes))
    new_holder = d.floating_ips.holders[IPv4Address("192.0.2.100")]
    assert new_holder != lost

    def from_new_holder() -> bool:
        peer = cluster.fabric.frr.json("show bgp neighbors 192.0.2.100").get("192.0.2.100", {})
        # The router ID is the node IP of whichever speaker holds the session.
        return bool(
            peer.get("bgpState") == "Established"
            and peer.get("remoteRouterId") == NODE_IPS[new_holder]
        )

    wait_for("Established from the new holder", from_new_holder, timeout=40)
    print(
        f"floating IP 192.0.2.100 moved {lost} → {new_holder}: "
        f"Established again after {time.monotonic() - started:.1f}s"
    )
    # The next hops no longer include the lost node.
    wait_for(
        "next hops without the lost node",
        lambda: cluster.fabric.frr.next_hops(VIP) == set(NODE_IPS.values()) - {NODE_IPS[lost]},
    )
    cluster.publish(replace(cluster.state, nodes=tuple(replace(n, ready=True) for n in nodes)))


def test_tor_restart_sessions_return(cluster: Cluster) -> None:
    wait_for("sessions", lambda: all_established(cluster))
    cluster.fabric.frr.stop()
    cluster.fabric.frr.start()
    wait_for(
        "sessions back on FRR",
        lambda: set(cluster.holders()) <= set(cluster.fabric.frr.established()),
        timeout=40,
    )
    wait_for("routes back on FRR", lambda: len(cluster.fabric.frr.next_hops(VIP)) == 3)
