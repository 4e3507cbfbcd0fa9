"""The control-plane VIP: advertised by the bgpadvertiser static Pod's command (as
`bgplb static-pod` writes it) from the node's own IP, only while its local
kube-apiserver is ready; the node agent reports those sessions and never touches
them (one owner)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

import pytest
import yaml

from bgplb import static_pod
from bgplb_lab.daemons import BIRD, FRR, GoBGPd, stop_processes, wait_for
from bgplb_lab.kube import KubeAPI, free_port
from bgplb_lab.manifests import gateway, load_balancer
from bgplb_lab.netns import Host, segment
from bgplb_lab.topology import process_level

NS = "kube-system"
CP_VIP = "198.51.100.10/32"
CONFIG = [
    load_balancer(
        controlPlane={
            "vip": "198.51.100.10",
            "port": 6443,
            "peers": [{"ip": "192.0.2.1", "asn": 65000}, {"ip": "192.0.2.2", "asn": 65000}],
        }
    ),
    gateway("192.0.2.100"),
]


@dataclass
class Env:
    api: KubeAPI
    frr: FRR
    bird: BIRD
    workdir: Path
    node: Host
    agent_command: list[str]
    procs: list[subprocess.Popen[bytes]]

    def session_state(self, name: str) -> str:
        out = self.api.kubectl("get", "bgpsession", name, "-o", "json", check=False)
        try:
            return str(json.loads(out or "{}").get("status", {}).get("state", ""))
        except ValueError:  # kubectl's error, not the object: say which
            raise RuntimeError(f"kubectl get bgpsession {name}: {out.strip()[:300]}") from None

    def restart_agent(self) -> None:
        agent = self.procs.pop()
        agent.send_signal(signal.SIGTERM)
        agent.wait(20)
        self.procs.append(self.node.popen(self.agent_command, self.workdir / "agent-cp1.log"))


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    work = Path(tempfile.mkdtemp(prefix="bgplb-test-"))
    work.chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []
    with segment(f"bc{os.getpid() % 10000}-") as seg:
        frr = FRR(
            seg.add_host("tor", "192.0.2.1/24"), work, 65000, IPv4Network("192.0.2.0/24"), 65001
        ).start()
        bird = BIRD(
            seg.add_host("tor2", "192.0.2.2/24"), work, 65000, IPv4Network("192.0.2.0/24"), 65001
        ).start()
        cp1 = seg.add_host("cp1", "192.0.2.11/24")
        api = KubeAPI(work / "kube", host="192.0.2.11", port=free_port(), netns=cp1.netns)
        try:
            api.start()
            api.install_crds()
            api.add_node("cp1", "192.0.2.11", {"node-role.kubernetes.io/control-plane": ""})
            api.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(CONFIG))
            procs.append(
                cp1.popen(
                    api.controller_command(NS),
                    work / "controller.log",
                )
            )
            GoBGPd(cp1, work, port=50051).start()
            # The static Pod's command line, as `bgplb static-pod` writes it; here the
            # API server runs on this node, on its own port.
            pod = static_pod.for_load_balancer(
                CONFIG[0], "192.0.2.11", "unused", readyz=f"{api.url}/readyz"
            )
            args = process_level(pod["spec"]["containers"][0]["args"])
            advertiser = [sys.executable, "-m", "bgplb.cli", *args]
            procs.append(cp1.popen(advertiser, work / "bgpadvertiser.log"))
            agent = api.agent_command(
                NS,
                "cp1",
                "192.0.2.11",
                "--control-plane-speaker",
                f"127.0.0.1:{static_pod.CONTROL_PLANE_API_PORT}",
                "--state-file",
                str(work / "agent-state.json"),
            )
            procs.append(cp1.popen(agent, work / "agent-cp1.log"))
            yield Env(api, frr, bird, work, cp1, agent, procs)
        finally:
            stop_processes(*procs, timeout=20)
            frr.stop()
            bird.stop()
            api.stop()
            if os.environ.get("BGPLB_KEEP_LOGS") is None:
                shutil.rmtree(work, ignore_errors=True)


def test_vip_follows_the_local_api_server(env: Env) -> None:
    # The control-plane session is named <peerIP>-<node>, as in the seed.
    wait_for(
        "the control-plane session object",
        lambda: "192.0.2.1-cp1" in env.api.kubectl("get", "bgpsessions"),
        timeout=60,
    )
    wait_for("session from the node IP", lambda: "192.0.2.11" in env.frr.established(), timeout=60)
    wait_for("the VIP via this node", lambda: env.frr.next_hops(CP_VIP) == {"192.0.2.11"})
    wait_for("the VIP on BIRD too", lambda: env.bird.next_hops(CP_VIP) == {"192.0.2.11"})
    # The agent reports what the static Pod's speaker holds.
    wait_for(
        "the session reported Established by the agent",
        lambda: env.session_state("192.0.2.1-cp1") == "Established",
        timeout=30,
    )
    status = json.loads(env.api.kubectl("get", "bgpsession", "192.0.2.1-cp1", "-o", "json"))
    assert status["status"]["advertisedRoutes"] == [CP_VIP]

    stopped = time.monotonic()
    env.api.stop_apiserver(crash=True)
    wait_for("the VIP withdrawn", lambda: not env.frr.next_hops(CP_VIP), timeout=15, every=0.05)
    took = time.monotonic() - stopped
    wait_for("the VIP withdrawn from BIRD", lambda: not env.bird.next_hops(CP_VIP), timeout=5)
    print(f"API server stopped → control-plane VIP withdrawn in {took:.2f}s")
    # The session itself stays up: only the route follows the API server.
    assert "192.0.2.11" in env.frr.established()
    assert took < 5, "withdrawn by the readiness probe, not by a session timing out"

    env.api.start_apiserver()
    wait_for("the VIP back", lambda: env.frr.next_hops(CP_VIP) == {"192.0.2.11"}, timeout=30)
    wait_for("the VIP back on BIRD", lambda: env.bird.next_hops(CP_VIP) == {"192.0.2.11"})


def test_state_file_keeps_the_configuration_for_starts_without_the_api(env: Env) -> None:
    state = json.loads((env.workdir / "agent-state.json").read_text())
    assert {"192.0.2.1-cp1", "192.0.2.2-cp1"} <= set(state["sessions"])
    assert oct((env.workdir / "agent-state.json").stat().st_mode & 0o777) == "0o600"


def test_agent_restart_leaves_the_control_plane_sessions_alone(env: Env) -> None:
    """One owner: the agent going away, even while the API server is down, changes
    nothing on the control-plane sessions or the VIP."""
    wait_for("the VIP", lambda: env.frr.next_hops(CP_VIP) == {"192.0.2.11"}, timeout=30)
    before = env.frr.established()["192.0.2.11"]
    env.api.stop_apiserver(crash=True)
    wait_for("the VIP withdrawn", lambda: not env.frr.next_hops(CP_VIP), timeout=10)
    env.restart_agent()
    env.api.start_apiserver()
    wait_for("the VIP back", lambda: env.frr.next_hops(CP_VIP) == {"192.0.2.11"}, timeout=30)
    after = env.frr.established()["192.0.2.11"]
    # The same session all along: a flap would give a later established time (FRR
    # derives it from the uptime in whole seconds, so allow one second of rounding).
    assert abs(after["peerUptimeEstablishedEpoch"] - before["peerUptimeEstablishedEpoch"]) <= 1


def test_a_service_session_to_the_same_router_reports_its_own_state(env: Env) -> None:
    """The control-plane speaker and the service speaker both peer with BIRD, from
    the node IP and from the floating IP. Each BGPSession reports its own speaker's
    state: with BIRD dropping everything from the floating IP, the Service session
    goes down and is never shown Established because the control-plane session to
    the same address is."""
    service, control_plane = "lb-192-0-2-2-cp1", "192.0.2.2-cp1"

    def both() -> tuple[str, str]:
        states = (env.session_state(service), env.session_state(control_plane))
        if states != ("Established",) * 2:
            # A timeout names the states and BIRD's view (CI run 21 timed out here).
            show = env.bird.birdc("show protocols", check=False)
            raise AssertionError(f"{states}; BIRD: {show}")
        return states

    wait_for("both sessions to BIRD Established", both, timeout=60)
    drop = ["INPUT", "-s", "192.0.2.100", "-j", "DROP"]
    env.bird.host.exec("iptables", "-I", *drop)
    try:
        wait_for(
            "the Service session reported down (hold timer 9 s)",
            lambda: env.session_state(service) not in ("", "Established"),
            timeout=30,
        )
        seen = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            seen.add(env.session_state(service))
            time.sleep(0.2)
        assert "Established" not in seen, seen
        assert env.session_state(control_plane) == "Established"
    finally:
        env.bird.host.exec("iptables", "-D", *drop)
    wait_for(
        "the Service session back",
        lambda: env.session_state(service) == "Established",
        timeout=60,
    )


def test_a_session_deleted_while_the_api_server_was_down_is_created_again(env: Env) -> None:
    """What goes while the controller's watches are away, no watch reports: kopf LISTs
    again and reports only what is there. CI run 22: two Service sessions the
    controller deleted just before such a re-LIST stayed in its index, and it never
    created them again. Here the object goes straight from etcd, with the API server
    down."""
    name = "192.0.2.1-cp1"
    wait_for("the session object", lambda: name in env.api.kubectl("get", "bgpsessions"))
    env.api.stop_apiserver(crash=True)
    try:
        deleted = env.api.delete_from_etcd(f"/registry/networking.bgplb.io/bgpsessions/{NS}/{name}")
    finally:
        env.api.start_apiserver()
    assert deleted == 1
    wait_for(
        "the session created again",
        lambda: name in env.api.kubectl("get", "bgpsessions"),
        timeout=30,
    )
