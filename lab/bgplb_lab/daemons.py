"""Real routing daemons started by hand inside lab namespaces: gobgpd, FRR, BIRD.

ToR configs accept sessions from any address of the segment (dynamic neighbours),
the way a ToR is set up to peer with every floating IP of a cluster, and install
multipath (ECMP) routes into their namespace's kernel.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, TypeVar

from bgplb_lab.netns import Host

T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 30, every: float = 0.1
) -> T:
    """Poll `probe` until it returns something truthy; raise naming `what` on timeout,
    with what the probe last gave: its value, or the error it raised (an error from
    early on, while a daemon came up, is not what went wrong later)."""
    deadline = time.monotonic() + timeout
    last: str = ""
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
            last = f"last {value!r}"
        except Exception as e:  # a probe may fail until the daemon is up
            last = f"last raised {type(e).__name__}: {e}"
        time.sleep(every)
    said = f"; {last}"[:2000] if last else ""
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}{said}")


def kernel_next_hops(host: Host, prefix: str) -> set[str]:
    """Next hops of the route a ToR installed in its kernel (ECMP shows several)."""
    routes = json.loads(host.exec("ip", "-j", "route", "show", prefix) or "[]")
    hops: set[str] = set()
    for route in routes:
        if "gateway" in route:
            hops.add(route["gateway"])
        hops.update(hop["gateway"] for hop in route.get("nexthops", []))
    return hops


@dataclass(frozen=True)
class RouteChange:
    """A ToR's kernel changed a route's next hops (none: the route is gone)."""

    at: float
    """Wall-clock seconds, as `ip -ts monitor` stamped it: the client's clock too."""
    next_hops: frozenset[str]


_EVENT = re.compile(r"\[(\S+)\] (Deleted )?(\S+) ")
"""A line of `ip -ts -o monitor route`: its stamp, whether a deletion, the prefix."""


def route_changes(events: str, prefix: str, before: set[str]) -> list[RouteChange]:
    """The changes of `prefix`'s next hops in `ip -ts -o monitor route` output, starting
    from `before`: a route replaced with the same next hops (FRR's new nexthop group,
    a path withdrawn that was not in the group) is no change to the traffic."""
    changes: list[RouteChange] = []
    hops = frozenset(before)
    for line in events.splitlines():
        m = _EVENT.match(line)
        if not m or m[3] != prefix:
            continue
        now = frozenset() if m[2] else frozenset(re.findall(r"\bvia (\S+)", line))
        if now != hops:
            changes.append(RouteChange(datetime.fromisoformat(m[1]).timestamp(), now))
            hops = now
    return changes


def routes_added(events: str, since: float, before: set[str]) -> dict[str, float]:
    """Host routes (a Service's VIP) added at or after `since` that were not in
    `before`, with when each was first added."""
    first: dict[str, float] = {}
    for line in events.splitlines():
        m = _EVENT.match(line)
        if not m or m[2] or "/" in m[3] or m[3] in before or m[3] in first:
            continue
        at = datetime.fromisoformat(m[1]).timestamp()
        if at >= since and re.match(r"[0-9.]+$", m[3]):
            first[m[3]] = at
    return first


@contextlib.contextmanager
def watch_routes(host: Host, log: Path) -> Iterator[Callable[[], str]]:
    """`host`'s kernel routing events while the block runs (`ip -ts -o monitor
    route`), each stamped to the microsecond as it happened, on the machine's clock.
    Polling `ip route` instead times to its own period and costs a process per look,
    CPU taken from what is being timed on a 2-core machine."""
    proc = host.popen(["ip", "-ts", "-o", "monitor", "route"], log)
    time.sleep(0.2)  # subscribed before the block changes anything
    try:
        yield log.read_text
    finally:
        stop_processes(proc)


@dataclass(frozen=True, order=True)
class PathSeen:
    """One path as a ToR holds it, in one shape for FRR and BIRD: what the tests
    compare with what bgplb was asked to send. Communities are numeric 'a:b' (the
    ToRs print well-known ones by name), sorted."""

    next_hop: str
    as_path: tuple[int, ...]
    med: int | None
    communities: tuple[str, ...]
    large_communities: tuple[str, ...]


_WELL_KNOWN = {
    "graceful-shutdown": "65535:0",
    "blackhole": "65535:666",
    "no-export": "65535:65281",
    "no-advertise": "65535:65282",
    "no-export-subconfed": "65535:65283",
    "local-AS": "65535:65283",
    "no-peer": "65535:65284",
}


def _communities(words: list[str]) -> tuple[str, ...]:
    out = [_WELL_KNOWN.get(w, w) for w in words if w]
    return tuple(sorted(out, key=lambda c: tuple(int(x) for x in c.split(":"))))


def stop_processes(*procs: subprocess.Popen[bytes] | None, timeout: float = 5) -> None:
    """SIGTERM to all at once, then wait; SIGKILL whoever outlasts `timeout`."""
    running = [p for p in procs if p is not None and p.poll() is None]
    for proc in running:
        proc.terminate()
    for proc in running:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class GoBGPd:
    """gobgpd with gRPC on 127.0.0.1 in its namespace, and on a unix socket for tests."""

    host: Host
    workdir: Path
    port: int = 50051
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.workdir / f"gobgpd-{self.host.name}-{self.port}.sock"

    @property
    def target(self) -> str:
        """gRPC target reachable from any namespace (filesystem sockets are not per-netns)."""
        return f"unix://{self.socket}"

    def start(self) -> GoBGPd:
        self.socket.unlink(missing_ok=True)
        self.proc = self.host.popen(
            [
                "gobgpd",
                "--api-hosts",
                f"127.0.0.1:{self.port},unix://{self.socket}",
                "-l",
                "info",
                "--log-plain",
            ],
            self.workdir / f"gobgpd-{self.host.name}-{self.port}.log",
        )
        wait_for(f"gobgpd on {self.host.name}", self.socket.exists, timeout=10)
        return self

    def stop(self) -> None:
        stop_processes(self.proc)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class FRR:
    """FRR 8.4 (zebra + bgpd) as a ToR."""

    host: Host
    workdir: Path
    asn: int
    listen_range: IPv4Network
    peer_asn: int
    password: str = ""
    bfd_ms: int = 0
    """> 0: BFD with the nodes (bfdd), this interval both ways."""
    bfd_multiplier: int = 3
    static: tuple[str, ...] = ()
    """Addresses (the floating IPs) known as static neighbours, connected to every
    second while down: a moved floating IP's session comes up on the ToR's next
    attempt (README: On the ToRs). The rest of `listen_range` stays dynamic."""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return self.workdir / f"frr-{self.host.name}"

    def bfdd_config(self) -> str:
        return (
            "bfd\n"
            " profile nodes\n"
            f"  transmit-interval {self.bfd_ms}\n"
            f"  receive-interval {self.bfd_ms}\n"
            f"  detect-multiplier {self.bfd_multiplier}\n"
            " exit\n"
            "exit\n"
        )

    def config(self) -> str:
        password = f" neighbor NODES password {self.password}\n" if self.password else ""
        bfd = " neighbor NODES bfd\n neighbor NODES bfd profile nodes\n" if self.bfd_ms else ""
        static = "".join(f" neighbor {a} peer-group NODES\n" for a in self.static)
        return (
            "frr defaults datacenter\n"
            f"hostname {self.host.name}\n"
            "log stdout informational\n"
            f"router bgp {self.asn}\n"
            f" bgp router-id {self.host.ip}\n"
            " no bgp ebgp-requires-policy\n"
            " bgp bestpath as-path multipath-relax\n"
            " neighbor NODES peer-group\n"
            f" neighbor NODES remote-as {self.peer_asn}\n"
            " neighbor NODES timers connect 1\n"
            f"{password}"
            f"{bfd}"
            f"{static}"
            f" bgp listen range {self.listen_range} peer-group NODES\n"
            " address-family ipv4 unicast\n"
            "  maximum-paths 16\n"
            " exit-address-family\n"
        )

    def start(self) -> FRR:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        (self.dir / "bgpd.conf").write_text(self.config())
        (self.dir / "zebra.conf").write_text(f"hostname {self.host.name}\n")
        if self.bfd_ms:
            (self.dir / "bfdd.conf").write_text(self.bfdd_config())
        frr = pwd.getpwnam("frr")
        for path in (self.dir, *self.dir.iterdir()):
            os.chown(path, frr.pw_uid, frr.pw_gid)
        common = [
            "-N",
            self.host.name,
            "-z",
            str(self.dir / "zserv.api"),
            "--vty_socket",
            str(self.dir),
            "-u",
            "frr",
            "-g",
            "frr",
        ]
        self._daemon("zebra", common, "zserv.api")
        if self.bfd_ms:
            self._daemon("bfdd", common, "bfdd.vty")
        self._daemon("bgpd", common, "bgpd.vty")
        return self

    def _daemon(self, name: str, common: list[str], ready: str) -> None:
        """Start one FRR daemon with its own pid and config file; wait for `ready`."""
        proc = self.host.popen(
            [
                f"/usr/lib/frr/{name}",
                *common,
                "-i",
                str(self.dir / f"{name}.pid"),
                "-f",
                str(self.dir / f"{name}.conf"),
            ],
            self.workdir / f"{name}-{self.host.name}.log",
        )
        self.procs.append(proc)
        wait_for(f"{name}'s {ready}", (self.dir / ready).exists, timeout=10)

    def stop(self) -> None:
        stop_processes(*reversed(self.procs))
        self.procs.clear()

    def vtysh(self, command: str) -> str:
        return self.host.exec("vtysh", "--vty_socket", str(self.dir), "-c", command)

    def bfd_drops(self) -> int:
        """Sessions bgpd has dropped because BFD said the neighbour was down."""
        log = self.workdir / f"bgpd-{self.host.name}.log"
        return log.read_text(errors="replace").count("(Cease/BFD Down)") if log.exists() else 0

    def vtysh_config(self, *lines: str) -> None:
        """Change the running configuration, as an operator at the ToR would."""
        args = ["vtysh", "--vty_socket", str(self.dir), "-c", "configure terminal"]
        for line in lines:
            args += ["-c", line]
        self.host.exec(*args)

    def json(self, command: str) -> Any:
        return json.loads(self.vtysh(command + " json"))

    def established(self) -> dict[str, dict[str, Any]]:
        """Neighbour address → summary, for Established sessions."""
        peers = self.json("show bgp ipv4 unicast summary").get("peers", {})
        return {a: p for a, p in peers.items() if p.get("state") == "Established"}

    def next_hops(self, prefix: str) -> set[str]:
        """Next hops of every path the ToR holds for `prefix` (empty when it has none)."""
        data = self.json(f"show bgp ipv4 unicast {prefix}")
        return {hop["ip"] for path in data.get("paths", []) for hop in path.get("nexthops", [])}

    def kernel_next_hops(self, prefix: str) -> set[str]:
        return kernel_next_hops(self.host, prefix)

    def paths(self, prefix: str) -> list[PathSeen]:
        """Every path held for `prefix` (exactly that prefix when it has a length, else
        the longest match of the address), with its attributes (`show bgp ... json`)."""
        data = self.json(f"show bgp ipv4 unicast {prefix}")
        seen = []
        for path in data.get("paths", []):
            aspath = path.get("aspath", {}).get("string", "")
            seen.append(
                PathSeen(
                    next_hop=path["nexthops"][0]["ip"],
                    as_path=tuple(int(a) for a in aspath.split() if a.isdigit()),
                    med=path.get("metric"),
                    communities=_communities(path.get("community", {}).get("string", "").split()),
                    large_communities=tuple(
                        sorted(path.get("largeCommunity", {}).get("string", "").split())
                    ),
                )
            )
        return sorted(seen)


@dataclass
class BIRD:
    """BIRD 2.0 as a ToR."""

    host: Host
    workdir: Path
    asn: int
    listen_range: IPv4Network
    peer_asn: int
    bfd_ms: int = 0
    """> 0: BFD with the nodes, this interval both ways."""
    bfd_multiplier: int = 3
    static: tuple[str, ...] = ()
    """As FRR's: static neighbours, named node_<address> (`established` lists them
    with the dynamic node1, node2, ...)."""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.workdir / f"bird-{self.host.name}.ctl"

    def config(self) -> str:
        bfd_protocol = bfd = ""
        if self.bfd_ms:
            bfd_protocol = (
                "protocol bfd {\n"
                '  interface "*" {\n'
                f"    min rx interval {self.bfd_ms} ms; min tx interval {self.bfd_ms} ms;\n"
                f"    multiplier {self.bfd_multiplier};\n"
                "  };\n"
                "}\n"
            )
            bfd = "  bfd on;\n"
        return (
            f"router id {self.host.ip};\n"
            "protocol device {}\n"
            "protocol kernel {\n"
            "  ipv4 { export all; };\n"
            "  merge paths on;\n"
            "}\n"
            f"{bfd_protocol}"
            "template bgp node_template {\n"
            f"  local {self.host.ip} as {self.asn};\n"
            # A moved floating IP reconnects at once (README: On the ToRs). A static
            # protocol keeps its error history: with the default forget time (300 s)
            # each holder failure doubled the next wait, 8 s by the fourth.
            "  error wait time 1, 2;\n"
            "  error forget time 10;\n"
            "  connect delay time 1;\n"
            "  connect retry time 1;\n"
            f"{bfd}"
            "  ipv4 { import all; export none; add paths rx; };\n"
            "}\n"
            "protocol bgp nodes from node_template {\n"
            f"  neighbor range {self.listen_range} as {self.peer_asn};\n"
            '  dynamic name "node";\n'
            "}\n"
            + "".join(
                f"protocol bgp node_{a.replace('.', '_')} from node_template {{\n"
                f"  neighbor {a} as {self.peer_asn};\n"
                "}\n"
                for a in self.static
            )
        )

    def start(self) -> BIRD:
        conf = self.workdir / f"bird-{self.host.name}.conf"
        conf.write_text(self.config())
        self.socket.unlink(missing_ok=True)
        self.proc = self.host.popen(
            ["bird", "-f", "-c", str(conf), "-s", str(self.socket)],
            self.workdir / f"bird-{self.host.name}.log",
        )
        wait_for("bird's control socket", self.socket.exists, timeout=10)
        return self

    def stop(self) -> None:
        stop_processes(self.proc)

    def birdc(self, command: str, check: bool = True) -> str:
        return self.host.exec("birdc", "-s", str(self.socket), command, check=check)

    def established(self) -> dict[str, str]:
        """Protocol name (dynamic or static) → its 'show protocols' line, for
        Established ones."""
        out = self.birdc("show protocols")
        return {
            line.split()[0]: line
            for line in out.splitlines()
            if line.startswith("node") and "Established" in line
        }

    def next_hops(self, prefix: str) -> set[str]:
        # birdc exits 1 with "Network not found" when there is no route.
        out = self.birdc(f"show route for {prefix} all", check=False)
        hops = set()
        for line in out.splitlines():
            words = line.split()
            if "BGP.next_hop:" in words:
                hops.add(words[words.index("BGP.next_hop:") + 1])
        return hops

    def kernel_next_hops(self, prefix: str) -> set[str]:
        return kernel_next_hops(self.host, prefix)

    def paths(self, prefix: str) -> list[PathSeen]:
        """Every path held for `prefix` (exactly that prefix when it has a length, else
        the longest match of the address), with its attributes (`show route ... all`)."""
        query = prefix if "/" in prefix else f"for {prefix}"
        out = self.birdc(f"show route {query} all", check=False)
        blocks: list[dict[str, str]] = []
        for line in out.splitlines():
            if " unicast [" in line:
                blocks.append({})
            elif blocks and (line := line.strip()).startswith("BGP.") and ":" in line:
                key, _, value = line.partition(":")
                blocks[-1][key] = value.strip()
        seen = []
        for b in blocks:
            pairs = re.findall(r"\((\d+),\s*(\d+)\)", b.get("BGP.community", ""))
            large = re.findall(r"\((\d+),\s*(\d+),\s*(\d+)\)", b.get("BGP.large_community", ""))
            seen.append(
                PathSeen(
                    next_hop=b.get("BGP.next_hop", "").split()[0] if "BGP.next_hop" in b else "",
                    as_path=tuple(int(a) for a in b.get("BGP.as_path", "").split()),
                    med=int(b["BGP.med"]) if "BGP.med" in b else None,
                    communities=_communities([f"{x}:{y}" for x, y in pairs]),
                    large_communities=tuple(sorted(":".join(t) for t in large)),
                )
            )
        return sorted(seen)
