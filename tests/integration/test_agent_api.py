"""bgplb-agent against a real kube-apiserver on the lab segment: desired state and
session status through the API, the node Lease, and self-fencing when the API goes."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgplb_lab.daemons import FRR, GoBGPd, stop_processes, wait_for
from bgplb_lab.kube import KubeAPI, free_port
from bgplb_lab.netns import Host, segment

NS = "kube-system"
SESSION = {
    "apiVersion": "networking.bgplb.io/v1",
    "kind": "BGPSession",
    "metadata": {"name": "tor-n1", "namespace": NS, "labels": {"networking.bgplb.io/node": "n1"}},
    "spec": {
        "floatingIP": "192.0.2.100",
        "localIP": "192.0.2.100",
        "localASN": 65001,
        "nodeName": "n1",
        "peerASN": 65000,
        "peerIP": "192.0.2.1",
        "peer": "tor",
        "connectRetrySeconds": 1,
    },
}
ROUTE = {
    "apiVersion": "networking.bgplb.io/v1",
    "kind": "BGPAdvertisedRoute",
    "metadata": {"name": "default-default-web", "namespace": NS},
    "spec": {
        "prefix": "203.0.113.10/32",
        "nextHops": ["192.0.2.11"],
        "service": {"namespace": "default", "name": "web"},
    },
}
LOAD_BALANCER = {
    "apiVersion": "networking.bgplb.io/v1",
    "kind": "BGPLoadBalancer",
    "metadata": {"name": "default", "namespace": NS},
    "spec": {
        "localASN": 65001,
        "addressPools": [{"name": "lab", "addresses": ["203.0.113.0/24"]}],
    },
}  # the pools: the only addresses an agent advertises
GATEWAY = {
    "apiVersion": "networking.bgplb.io/v1",
    "kind": "NetworkGatewayGroup",
    "metadata": {"name": "default", "namespace": NS},
    "spec": {"floatingIPs": ["192.0.2.100"]},
}


@dataclass
class Env:
    api: KubeAPI
    frr: FRR
    node: Host
    agent: subprocess.Popen[bytes]


def _addresses(host: Host) -> set[str]:
    out = json.loads(host.exec("ip", "-j", "addr", "show", "eth0"))
    return {a["local"] for a in out[0]["addr_info"] if a["family"] == "inet"}


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    workdir = Path(tempfile.mkdtemp(prefix="bgplb-test-"))
    workdir.chmod(0o755)
    with segment(f"ba{os.getpid() % 10000}-") as seg:
        cp = seg.add_host("cp", "192.0.2.250/24")
        tor = seg.add_host("tor", "192.0.2.1/24")
        n1 = seg.add_host("n1", "192.0.2.11/24")
        api = KubeAPI(workdir / "kube", host="192.0.2.250", port=free_port(), netns=cp.netns)
        frr = FRR(tor, workdir, 65000, IPv4Network("192.0.2.0/24"), 65001).start()
        gobgpd = GoBGPd(n1, workdir).start()
        agent = None
        try:
            api.start()
            api.kubectl("apply", "--server-side", "-f", "crds/")
            api.kubectl("wait", "--for=condition=Established", "crd", "--all")
            api.kubectl(
                "apply",
                "-f",
                "-",
                stdin=yaml.safe_dump_all([SESSION, ROUTE, GATEWAY, LOAD_BALANCER]),
            )
            api.kubectl(
                "patch",
                "ngg",
                "default",
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps({"status": {"floatingIPs": {"192.0.2.100": "n1"}}}),
            )
            agent = n1.popen(
                [
                    sys.executable,
                    "-m",
                    "bgplb.agent",
                    "--node",
                    "n1",
                    "--node-ip",
                    "192.0.2.11",
                    "--kubeconfig",
                    str(api.kubeconfig),
                    "--namespace",
                    NS,
                    "--lease-duration",
                    "3",
                ],
                workdir / "agent-n1.log",
            )
            yield Env(api, frr, n1, agent)
        finally:
            stop_processes(agent, timeout=10)
            gobgpd.stop()
            frr.stop()
            api.stop()
            if os.environ.get("BGPLB_KEEP_LOGS") is None:
                shutil.rmtree(workdir, ignore_errors=True)


def _lease_renew_time(env: Env) -> str:
    out = env.api.kubectl("get", "lease", "bgplb-node-n1", "-o", "jsonpath={.spec.renewTime}")
    return out.strip()


def test_agent_renews_its_node_lease_every_second(env: Env) -> None:
    first = wait_for("the node Lease", lambda: _lease_renew_time(env))
    time.sleep(1.5)
    assert _lease_renew_time(env) > first
    holder = env.api.kubectl(
        "get",
        "lease",
        "bgplb-node-n1",
        "-o",
        "jsonpath={.spec.holderIdentity}/{.spec.leaseDurationSeconds}",
    )
    assert holder == "n1/3"


def test_session_from_api_reaches_established_and_status_is_written(env: Env) -> None:
    wait_for("floating IP on n1", lambda: "192.0.2.100" in _addresses(env.node))
    wait_for("Established on FRR", lambda: "192.0.2.100" in env.frr.established())
    wait_for("route on FRR", lambda: env.frr.next_hops("203.0.113.10/32") == {"192.0.2.11"})

    def status_established() -> bool:
        out = env.api.kubectl("get", "bgpsessions", "--no-headers")
        return "Established" in out

    wait_for("BGPSession status Established", status_established, timeout=10)
    table = env.api.kubectl("get", "bgpsessions").splitlines()
    assert table[0].split()[-4:] == ["STATE", "LAST", "REPORT"][-3:] or "LAST REPORT" in table[0]
    assert table[1].split()[:6] == [
        "tor-n1",
        "65001",
        "65000",
        "192.0.2.100",
        "192.0.2.1",
        "Established",
    ]
    status = json.loads(env.api.kubectl("get", "bgpsession", "tor-n1", "-o", "json"))["status"]
    assert status["advertisedRoutes"] == ["203.0.113.10/32"]
    assert status["advertisedPrefixes"] == 1


def test_identical_status_is_not_rewritten(env: Env) -> None:
    wait_for("status", lambda: "Established" in env.api.kubectl("get", "bgpsessions"))
    # The prefix counters settle a moment after Established (FRR sends the VIP back):
    # a real change, reported at the next resync. Wait for it, then expect silence.
    wait_for(
        "counters settled",
        lambda: (
            json.loads(env.api.kubectl("get", "bgpsession", "tor-n1", "-o", "json"))["status"][
                "receivedPrefixes"
            ]
            >= 1
        ),
        timeout=15,
    )
    time.sleep(1)
    version = env.api.kubectl(
        "get", "bgpsession", "tor-n1", "-o", "jsonpath={.metadata.resourceVersion}"
    )
    time.sleep(6)  # past a resync, well short of the refresh period
    assert (
        env.api.kubectl("get", "bgpsession", "tor-n1", "-o", "jsonpath={.metadata.resourceVersion}")
        == version
    )


def test_a_bad_password_secret_fails_only_its_own_session(env: Env) -> None:
    """A session whose password Secret is missing, then holds bytes that are not
    UTF-8, reports that in its own status; everything else is still applied (here a
    new route reaches FRR over the other session) and the agent keeps running."""
    wait_for("Established on FRR", lambda: "192.0.2.100" in env.frr.established(), timeout=60)
    broken = json.loads(json.dumps(SESSION))
    broken["metadata"]["name"] = "tor2-n1"
    broken["spec"] |= {"peerIP": "192.0.2.9", "passwordSecretRef": {"name": "tor2-md5"}}
    route = json.loads(json.dumps(ROUTE))
    route["metadata"]["name"] = "default-default-web2"
    route["spec"] |= {
        "prefix": "203.0.113.11/32",
        "service": {"namespace": "default", "name": "web2"},
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "tor2-md5", "namespace": NS},
        "data": {"password": base64.b64encode(b"\xff\xfe not text").decode()},
    }

    def last_error() -> str:
        out = env.api.kubectl("get", "bgpsession", "tor2-n1", "-o", "json", check=False)
        return str(json.loads(out or "{}").get("status", {}).get("lastError", ""))

    try:
        env.api.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([broken, route]))
        wait_for(
            "the new route on FRR despite the missing Secret",
            lambda: env.frr.next_hops("203.0.113.11/32") == {"192.0.2.11"},
            timeout=30,
        )
        wait_for("the session names its Secret", lambda: "tor2-md5" in last_error(), timeout=30)
        env.api.kubectl("apply", "-f", "-", stdin=json.dumps(secret))
        env.api.kubectl("delete", "bgpadvertisedroute", "default-default-web2", "-n", NS)
        wait_for(
            "the route withdrawn despite the undecodable Secret",
            lambda: not env.frr.next_hops("203.0.113.11/32"),
            timeout=30,
        )
        assert "tor2-md5" in last_error()
        assert env.agent.poll() is None
        assert "192.0.2.100" in env.frr.established()
    finally:
        for kind, name in (
            ("bgpsession", "tor2-n1"),
            ("bgpadvertisedroute", "default-default-web2"),
            ("secret", "tor2-md5"),
        ):
            env.api.kubectl("delete", kind, name, "-n", NS, "--ignore-not-found")


def _neighbour(env: Env) -> dict[str, Any]:
    """gobgpd's own view of the session's neighbour, read over its gRPC API."""
    code = (
        "import asyncio, json\n"
        "from ipaddress import IPv4Address\n"
        "from bgplb.agent.speaker.gobgp import GoBGPSpeaker\n"
        "async def main():\n"
        "    s = GoBGPSpeaker('127.0.0.1:50051')\n"
        "    held = await s.adopt()\n"
        "    await s.close()\n"
        "    p = held.peers.get(IPv4Address('192.0.2.1'))\n"
        "    print(json.dumps({'gr': p.graceful_restart, 'password': p.password} if p else {}))\n"
        "asyncio.run(main())\n"
    )
    return dict(json.loads(env.node.exec(sys.executable, "-c", code)))


def _gr_enabled(env: Env) -> bool:
    return bool(_neighbour(env).get("gr"))


def _password(env: Env) -> str:
    return str(_neighbour(env).get("password") or "")


def test_removals_reach_gobgpd_and_the_interface(env: Env) -> None:
    """What the controller removes from the objects (test_controller.py's removal
    test) also leaves gobgpd and the node: graceful restart and a password taken out
    of the BGPSession leave gobgpd's neighbour; a floating IP taken out of the
    gateway's status leaves the interface."""
    wait_for("Established on FRR", lambda: "192.0.2.100" in env.frr.established(), timeout=30)
    secret = {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "tor-md5", "namespace": NS},
        "stringData": {"password": "s3cret"},
    }  # fmt: skip
    env.api.kubectl("apply", "-f", "-", stdin=json.dumps(secret))
    extra = {
        "gracefulRestart": {"enabled": True, "restartTimeSeconds": 60},
        "passwordSecretRef": {"name": "tor-md5", "key": "password"},
    }
    env.api.kubectl(
        "patch", "bgpsession", "tor-n1", "-n", NS, "--type=merge",
        "-p", json.dumps({"spec": extra}),
    )  # fmt: skip
    try:
        wait_for("graceful restart in gobgpd", lambda: _gr_enabled(env), timeout=30)
        wait_for("the password in gobgpd", lambda: _password(env) == "s3cret", timeout=30)
        remove = [
            {"op": "remove", "path": "/spec/gracefulRestart"},
            {"op": "remove", "path": "/spec/passwordSecretRef"},
        ]
        env.api.kubectl(
            "patch", "bgpsession", "tor-n1", "-n", NS, "--type=json", "-p", json.dumps(remove)
        )
        wait_for("graceful restart gone from gobgpd", lambda: not _gr_enabled(env), timeout=30)
        wait_for("the password gone from gobgpd", lambda: not _password(env), timeout=30)
        wait_for("Established again", lambda: "192.0.2.100" in env.frr.established(), timeout=30)

        env.api.kubectl(
            "patch", "ngg", "default", "-n", NS, "--subresource=status", "--type=json",
            "-p", json.dumps([{"op": "replace", "path": "/status/floatingIPs", "value": {}}]),
        )  # fmt: skip
        wait_for("the floating IP off n1", lambda: "192.0.2.100" not in _addresses(env.node))
    finally:
        env.api.kubectl(
            "patch", "ngg", "default", "-n", NS, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"floatingIPs": {"192.0.2.100": "n1"}}}),
        )  # fmt: skip
        env.api.kubectl("delete", "secret", "tor-md5", "-n", NS, "--ignore-not-found")
    wait_for("the floating IP back", lambda: "192.0.2.100" in _addresses(env.node), timeout=20)
    wait_for("Established", lambda: "192.0.2.100" in env.frr.established(), timeout=30)


def _holding(env: Env) -> str:
    return env.api.kubectl(
        "get", "lease", "bgplb-node-n1", "-n", NS,
        "-o", r"jsonpath={.metadata.annotations.networking\.bgplb\.io/floating-ips}",
    ).strip()  # fmt: skip


def test_the_lease_reports_held_floating_ips_with_the_epoch_applied(env: Env) -> None:
    """What the controller waits on before it gives a floating IP to another live
    node: the old node's report, from the release's epoch on, without the IP."""
    wait_for("the floating IP on n1", lambda: "192.0.2.100" in _addresses(env.node))

    def status(body: dict[str, object]) -> None:
        env.api.kubectl(
            "patch", "ngg", "default", "-n", NS, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": body}),
        )  # fmt: skip

    try:
        status({"floatingIPs": {"192.0.2.100": "n1"}, "epoch": 6})
        wait_for("held, at epoch 6", lambda: _holding(env) == "6:192.0.2.100", timeout=10)
        status({"floatingIPs": None, "releasing": {"192.0.2.100": "n1"}, "epoch": 7})
        wait_for("released, at epoch 7", lambda: _holding(env) == "7:", timeout=10)
        # The report follows the interface: by then the address is gone.
        assert "192.0.2.100" not in _addresses(env.node)
    finally:
        status({"floatingIPs": {"192.0.2.100": "n1"}, "releasing": None, "epoch": 8})
    wait_for("the floating IP back", lambda: "192.0.2.100" in _addresses(env.node), timeout=20)
    wait_for("held again", lambda: _holding(env) == "8:192.0.2.100", timeout=10)


def test_agent_fences_its_floating_ips_when_the_api_goes_away(env: Env) -> None:
    wait_for("floating IP on n1", lambda: "192.0.2.100" in _addresses(env.node))
    stopped = time.monotonic()
    env.api.stop_apiserver(crash=True)
    wait_for("self-fencing", lambda: "192.0.2.100" not in _addresses(env.node), timeout=10)
    took = time.monotonic() - stopped
    print(f"floating IP dropped {took:.1f}s after the API server stopped (lease 3s)")
    assert took < 3.0, "the IP must be gone before the lease can expire"
    env.api.start_apiserver()
    # Renewed again, and the API still places the IP here: it comes back.
    wait_for("floating IP back on n1", lambda: "192.0.2.100" in _addresses(env.node), timeout=20)
    wait_for("Established again", lambda: "192.0.2.100" in env.frr.established(), timeout=30)


def _http_in(host: Host, url: str) -> tuple[int, str]:
    """GET from inside a namespace (the agent's endpoints listen on its 127.0.0.1)."""
    code = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    r = urllib.request.urlopen({url!r}, timeout=5)\n"
        "    print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
    )
    out = host.exec(sys.executable, "-c", code)
    status, _, body = out.partition("\n")
    return int(status), body


def test_agent_serves_health_and_metrics(env: Env) -> None:
    wait_for("Established", lambda: "192.0.2.100" in env.frr.established())
    status, body = _http_in(env.node, "http://127.0.0.1:9091/healthz")
    assert (status, body.strip()) == (200, "ok")
    status, body = _http_in(env.node, "http://127.0.0.1:9091/metrics")
    assert status == 200
    assert 'bgplb_agent_sessions{state="Established"} 1.0' in body
    assert "bgplb_agent_paths_advertised 1.0" in body
    assert 'bgplb_agent_floating_ip_changes_total{op="add"}' in body
