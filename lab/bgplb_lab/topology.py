"""The lab: a whole bgplb cluster in network namespaces on one machine.

    client 198.51.100.10
        │ uplink 198.51.100.0/24
    tor-frr .1 ── tor-bird .2          (eBGP, AS 65002; ECMP into their kernels)
        │ fabric 192.0.2.0/24 │
    apiserver .250 (etcd, kube-apiserver, bgplb-controller)
    n1 .11  n2 .12  n3 .13   control-plane nodes: agent + gobgpd (service, control plane)
    n4 .14                   worker: agent + gobgpd
    floating IPs 192.0.2.100-101, Service VIPs 203.0.113.1-4, control-plane VIP 203.0.113.8

Control-plane nodes run the bgpadvertiser static Pod's command as a process. Each
node also runs a kube-proxy stand-in (lab/proxy.py) answering on the VIPs with
its name. The seed's three example configurations are translated onto these
addresses (`example_config`). Every process runs inside a namespace named with the
lab's prefix, so removing the namespaces removes the lab.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

import yaml

from bgplb import static_pod
from bgplb.static_pod import CONTROL_PLANE_API_PORT
from bgplb_lab.daemons import BIRD, FRR, GoBGPd, wait_for
from bgplb_lab.kube import KubeAPI
from bgplb_lab.manifests import NAMESPACE, gateway, load_balancer, peer, service
from bgplb_lab.netns import Host, Segment, cleanup_prefix, kill_all_in, kill_namespace, run

FABRIC = IPv4Network("192.0.2.0/24")
LOCAL_ASN, TOR_ASN = 65001, 65002
FRR_IP, BIRD_IP = "192.0.2.1", "192.0.2.2"
BFD_MS, BFD_MULTIPLIER = 150, 6
"""BFD of the ToRs and the example peers: down after 0.9 s of silence, as 300 ms x 3
(MetalLB's documented FRR-mode setting), but six packets must be lost in a row, not
three: at 300 ms x 3 the soak's 5 % lossy link dropped a session (three in a row
lost about once in 35 minutes per direction; six, once in years)."""
BFD = {
    "transmitIntervalMilliseconds": BFD_MS,
    "receiveIntervalMilliseconds": BFD_MS,
    "detectMultiplier": BFD_MULTIPLIER,
}
APISERVER_IP, API_PORT = "192.0.2.250", 6443
CLIENT_IP = "198.51.100.10"
FLOATING_IPS = ("192.0.2.100", "192.0.2.101")
POOL = "203.0.113.1-203.0.113.4"
CONTROL_PLANE_VIP = "203.0.113.8"
DEMO_VIP = "203.0.113.1"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    ip: str
    control_plane: bool


NODES = (
    NodeSpec("n1", "192.0.2.11", True),
    NodeSpec("n2", "192.0.2.12", True),
    NodeSpec("n3", "192.0.2.13", True),
    NodeSpec("n4", "192.0.2.14", False),
)


def process_level(args: list[str]) -> list[str]:
    """The static Pod's arguments for a process: gRPC on the node namespace's loopback
    (the Pod's unix socket lives in a host directory that processes would share)."""
    return [
        f"--api=127.0.0.1:{CONTROL_PLANE_API_PORT}" if a.startswith("--api=") else a for a in args
    ]


def example_config(example: int, bfd: bool = True) -> list[dict[str, Any]]:
    """The seed's example N on the lab's addresses (10.0.0.x VIPs → 203.0.113.x,
    its peers → the two ToRs, its nodes → n1-n3); every peer asks for BFD unless
    `bfd` is False."""
    control_plane: dict[str, Any] = {"vip": CONTROL_PLANE_VIP, "port": 443}
    if example == 1:  # the same peers for every node, data plane included
        control_plane["peers"] = [{"ip": FRR_IP, "asn": TOR_ASN}, {"ip": BIRD_IP, "asn": TOR_ASN}]
    else:  # control-plane nodes mapped to specific peers
        control_plane["peers"] = [
            {"ip": FRR_IP, "asn": TOR_ASN, "controlPlaneNodes": [NODES[0].ip, NODES[1].ip]},
            {"ip": BIRD_IP, "asn": TOR_ASN, "controlPlaneNodes": [NODES[2].ip]},
        ]
    if bfd:
        control_plane["peers"] = [{**p, "bfd": BFD} for p in control_plane["peers"]]
    spec: dict[str, Any] = {
        "localASN": LOCAL_ASN,
        "controlPlane": control_plane,
        "addressPools": [{"name": "pool1", "addresses": [POOL]}],
    }
    objects = [gateway(*FLOATING_IPS)]
    if example == 3:  # separate data-plane peers, chosen by label, two sessions each
        label = {"cluster.baremetal.gke.io/default-peer": "true"}
        spec["peerSelector"] = label
        objects += [
            peer(
                name,
                label,
                localASN=LOCAL_ASN,
                peerASN=TOR_ASN,
                peerIP=ip,
                sessions=2,
                **({"bfd": BFD} if bfd else {}),
            )
            for name, ip in (("tor-frr", FRR_IP), ("tor-bird", BIRD_IP))
        ]
    return [load_balancer(**spec), *objects]


def demo_service() -> dict[str, Any]:
    return service("demo")


@dataclass
class Lab:
    workdir: Path
    prefix: str = "bgplab-"
    example: int = 3
    lease_expiry: float = 3.0
    log: bool = True
    mesh: bool = True
    """The agents' mesh (False: next hops leave only at Lease expiry)."""
    bfd: bool = True
    """The example peers ask for BFD (the ToRs always run it)."""
    api: KubeAPI = field(init=False)
    fabric: Segment | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.api = KubeAPI(
            self.workdir / "kube", host=APISERVER_IP, port=API_PORT, netns=self.netns("apiserver")
        )

    # --- where things are --------------------------------------------------------

    def netns(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def host(self, name: str, ip: str) -> Host:
        return Host(name, self.netns(name), "eth0", [IPv4Interface(f"{ip}/24")])

    @property
    def frr(self) -> FRR:
        host = self.host("tor-frr", FRR_IP)
        return FRR(
            host,
            self.workdir,
            TOR_ASN,
            FABRIC,
            LOCAL_ASN,
            bfd_ms=BFD_MS,
            bfd_multiplier=BFD_MULTIPLIER,
            static=FLOATING_IPS,
        )

    @property
    def bird(self) -> BIRD:
        host = self.host("tor-bird", BIRD_IP)
        return BIRD(
            host,
            self.workdir,
            TOR_ASN,
            FABRIC,
            LOCAL_ASN,
            bfd_ms=BFD_MS,
            bfd_multiplier=BFD_MULTIPLIER,
            static=FLOATING_IPS,
        )

    @property
    def client(self) -> Host:
        # Named by the uplink segment it was created on.
        return Host("client", self.netns("upclient"), "eth0", [IPv4Interface(f"{CLIENT_IP}/24")])

    def node(self, name: str) -> NodeSpec:
        return next(n for n in NODES if n.name == name)

    def say(self, text: str) -> None:
        if self.log:
            print(text, flush=True)

    # --- up / down ---------------------------------------------------------------

    def up(self) -> Lab:
        self.down()
        self.workdir.mkdir(parents=True)
        self.workdir.chmod(0o755)  # FRR runs as its own user and needs to reach its dir
        (self.workdir / "lab.json").write_text(json.dumps(self.saved_state()))
        try:
            self._build()
        except BaseException:
            self.say(f"lab failed to come up; logs in {self.workdir}")
            self.stop()
            raise
        return self

    def saved_state(self) -> dict[str, Any]:
        """What `lab.json` keeps for `status`, `kubectl` and `down` to find the lab."""
        return {"prefix": self.prefix, "example": self.example}

    def _build(self) -> None:
        fabric = self._network()
        fabric.add_host("apiserver", f"{APISERVER_IP}/24")
        self.say("kube-apiserver on 192.0.2.250:6443 (etcd beside it)")
        self.api.start()
        self.api.install_crds()
        for node in NODES:
            labels = {CONTROL_PLANE_LABEL: ""} if node.control_plane else {}
            self.api.add_node(node.name, node.ip, labels)
        self.apply(example_config(self.example, self.bfd))
        self.apply([demo_service()])
        self.say("bgplb-controller")
        self.start_controller()
        for node in NODES:
            fabric.add_host(node.name, f"{node.ip}/24")
            self.say(f"node {node.name} {node.ip}: gobgpd, bgplb-agent, kube-proxy stand-in")
            self.start_node(node.name)

    def _network(self) -> Segment:
        """The fabric and uplink segments, both ToRs (FRR and BIRD running) and the
        client; returns the fabric, for the cluster's hosts."""
        fabric, uplink = Segment(self.prefix), Segment(f"{self.prefix}up")
        self.fabric = fabric
        self.say("network: fabric 192.0.2.0/24, uplink 198.51.100.0/24")
        tors = {
            "tor-frr": (FRR_IP, "198.51.100.1/24"),
            "tor-bird": (BIRD_IP, "198.51.100.2/24"),
        }
        for name, (ip, up_ip) in tors.items():
            tor = fabric.add_host(name, f"{ip}/24")
            uplink.attach(tor, up_ip)
            # Routers forward, and hash flows by ports too so ECMP spreads one client.
            tor.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
            tor.exec("sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1")
        client = uplink.add_host("client", f"{CLIENT_IP}/24")
        client.exec("ip", "route", "add", "default", "via", "198.51.100.1")
        self.say("ToRs: FRR 192.0.2.1 and BIRD 192.0.2.2, AS 65002")
        self.frr.start()
        self.bird.start()
        return fabric

    def stop(self) -> None:
        """Every process and namespace of the lab gone; its files (logs) kept."""
        cleanup_prefix(self.prefix)

    def down(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- processes ---------------------------------------------------------------

    def _popen(self, host: str, cmd: list[str], log: str) -> None:
        # Detached: the lab outlives the command that built it. A Pod's restartPolicy
        # Always is played by a shell loop.
        subprocess.Popen(
            ["ip", "netns", "exec", self.netns(host), *cmd],
            stdout=(self.workdir / log).open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_controller(self) -> None:
        cmd = self.api.controller_command(NAMESPACE, "--lease-expiry", str(self.lease_expiry))
        self._popen(
            "apiserver",
            ["sh", "-c", 'while :; do "$@"; sleep 1; done', "restart-always", *cmd],
            "controller.log",
        )

    def start_node(self, name: str) -> None:
        node = self.node(name)
        host = self.host(name, node.ip)
        host.exec("ip", "route", "replace", "default", "via", FRR_IP)
        GoBGPd(host, self.workdir, port=50051).start()
        if node.control_plane:
            self._popen(name, self.advertiser_command(node), f"bgpadvertiser-{name}.log")
        self.start_agent(name)
        proxy = [
            sys.executable,
            "-m",
            "bgplb_lab.proxy",
            "--node",
            name,
            "--kubeconfig",
            str(self.api.kubeconfig),
        ]
        self._popen(name, proxy, f"proxy-{name}.log")

    def start_agent(self, name: str) -> None:
        node = self.node(name)
        extra = ["--state-file", str(self.workdir / f"agent-{name}.state")]
        if node.control_plane:
            extra += ["--control-plane-speaker", f"127.0.0.1:{CONTROL_PLANE_API_PORT}"]
        agent = self.api.agent_command(
            NAMESPACE, name, node.ip, "--lease-duration", str(self.lease_expiry), *extra
        )
        self._popen(name, agent, f"agent-{name}.log")

    def advertiser_command(self, node: NodeSpec) -> list[str]:
        """The bgpadvertiser static Pod's own command line, run as a process (the
        process-level lab has no kubelet); its readiness probe is the lab's API server."""
        lb = example_config(self.example, self.bfd)[0]
        spec = static_pod.for_load_balancer(lb, node.ip, "unused", readyz=f"{self.api.url}/readyz")
        container = spec["spec"]["containers"][0]
        return [sys.executable, "-m", "bgplb.cli", *process_level(container["args"])]

    def restart_agent(self, node: str) -> None:
        """Stop a node's agent (SIGTERM, as a rollout does) and start a new one."""
        log = self.workdir / f"agent-{node}.log"
        started = log.read_text().count('"agent starting"')
        pids = self.signal(node, "bgplb.agent", signal.SIGTERM)
        wait_for("the agent gone", lambda: not any(alive(p) for p in pids), timeout=20)
        self.start_agent(node)
        wait_for("the new agent", lambda: log.read_text().count('"agent starting"') > started, 30)

    def restart_controller(self) -> None:
        """Stop the controller; its restart loop starts a new one, which leads."""
        log = self.workdir / "controller.log"
        leading = log.read_text().count('"leading"')
        self.signal("apiserver", "bgplb.controller", signal.SIGTERM)
        wait_for(
            "the new controller leading",
            lambda: log.read_text().count('"leading"') > leading,
            timeout=60,
        )

    def agent_log(self, node: str) -> str:
        return (self.workdir / f"agent-{node}.log").read_text()

    def add_host(self, name: str, ip: str) -> Host:
        """Another host on the fabric (a new router, for a drill)."""
        assert self.fabric is not None, "only a lab built by this process can grow"
        return self.fabric.add_host(name, f"{ip}/24")

    def remove_host(self, name: str) -> None:
        kill_namespace(self.netns(name))
        if self.fabric is not None:
            self.fabric.hosts.pop(name, None)

    def pids(self, host: str, needle: str) -> list[int]:
        """Processes in a host's namespace whose command line contains `needle`."""
        out = run("ip", "netns", "pids", self.netns(host), check=False)
        found = []
        for pid in (int(p) for p in out.split()):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if needle.encode() in cmdline and not cmdline.startswith(b"sh -c"):
                found.append(pid)
        return found

    def signal(self, host: str, needle: str, sig: int) -> list[int]:
        pids = self.pids(host, needle)
        for pid in pids:
            os.kill(pid, sig)
        return pids

    def fail_node(self, name: str) -> None:
        """A node dies: no more packets in or out, every process gone."""
        host = self.host(name, self.node(name).ip)
        host.exec("ip", "link", "set", "eth0", "down")
        kill_all_in(host.netns)

    def restore_node(self, name: str) -> None:
        """The node boots again: no floating IPs (a reboot clears them), daemons started."""
        host = self.host(name, self.node(name).ip)
        host.exec("ip", "addr", "flush", "dev", "eth0", "label", "eth0:bgplb")
        host.exec("ip", "link", "set", "eth0", "up")
        self.start_node(name)

    # --- the API -----------------------------------------------------------------

    def api_script(self, code: str) -> list[str]:
        """A Python script run where the API server is reachable (its namespace), with
        the lab's kubeconfig as its argument."""
        return ["ip", "netns", "exec", self.api.netns or "", sys.executable, "-c", code,
                str(self.api.kubeconfig)]  # fmt: skip

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.api.kubectl(*args, stdin=stdin)

    def apply(self, objects: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def get(self, kind: str, name: str | None = None) -> Any:
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        return json.loads(self.kubectl(*args))

    # --- what the fabric sees ----------------------------------------------------

    def sessions(self) -> dict[str, str]:
        """BGPSession name → state as reported."""
        return {
            s["metadata"]["name"]: s.get("status", {}).get("state", "")
            for s in self.get("bgpsessions")["items"]
        }

    def holders(self) -> dict[str, str]:
        """Floating IP → node, as the controller decided."""
        status = self.get("networkgatewaygroups", "default").get("status", {})
        return dict(status.get("floatingIPs", {}))

    def plumbed(self) -> dict[str, list[str]]:
        """Floating IP → nodes that have it on an interface right now."""
        where: dict[str, list[str]] = {}
        for node in NODES:
            out = run("ip", "netns", "exec", self.netns(node.name), "ip", "-j", "addr", check=False)
            for link in json.loads(out or "[]"):
                for addr in link.get("addr_info", []):
                    if addr.get("local") in FLOATING_IPS:
                        where.setdefault(addr["local"], []).append(node.name)
        return where

    def tor_next_hops(self, prefix: str) -> dict[str, set[str]]:
        return {
            "frr": self.frr.kernel_next_hops(prefix),
            "bird": self.bird.kernel_next_hops(prefix),
        }

    def wait_ready(self, timeout: float = 120) -> None:
        def ready() -> bool:
            sessions = self.sessions()
            lb_nodes = {n.ip for n in NODES if n.control_plane}
            return (
                len(sessions) > 0
                and all(state == "Established" for state in sessions.values())
                and all(hops == lb_nodes for hops in self.tor_next_hops(DEMO_VIP).values())
            )

        try:
            wait_for("every session Established and the demo VIP on both ToRs", ready, timeout)
        except TimeoutError as e:
            # Which session, which ToR: what the next look at the logs starts from.
            down = {n: s for n, s in self.sessions().items() if s != "Established"}
            hops = self.tor_next_hops(DEMO_VIP)
            raise TimeoutError(f"{e}; not Established: {down}; ToRs' next hops: {hops}") from e

    def views(self) -> Iterator[str]:
        yield "$ kubectl get bgpsessions"
        yield self.kubectl("get", "bgpsessions")
        yield "$ kubectl get bgpadvertisedroutes"
        yield self.kubectl("get", "bgpadvertisedroutes")
        yield "$ kubectl get svc demo"
        yield self.kubectl("get", "service", "demo", "-n", "default")
        for name, tor in (("tor-frr", self.frr.host), ("tor-bird", self.bird.host)):
            proto = "bgp" if name == "tor-frr" else "bird"
            yield f"$ ip route show proto {proto}    # in {name}: ECMP into the kernel"
            yield tor.exec("ip", "route", "show", "proto", proto)
        yield f"$ client: 12 requests, GET http://{DEMO_VIP}/ (a new connection each)"
        yield self.client_requests(12)

    def client_requests(self, count: int, vip: str = DEMO_VIP) -> str:
        cmd = [sys.executable, "-m", "bgplb_lab.client", vip, "--count", str(count)]
        return self.client.exec(*cmd, check=False, timeout=60)

    def start_traffic(
        self, log: Path, timeout: float = 0.5, vip: str = DEMO_VIP
    ) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "bgplb_lab.client", vip, "--log", str(log)]
        cmd += ["--timeout", str(timeout)]
        return self.client.popen(cmd, self.workdir / f"client-{vip}.log")


def alive(pid: int) -> bool:
    """Running (a zombie whose parent has not reaped it yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
