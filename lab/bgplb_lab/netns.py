"""Network namespaces for the lab and the integration tests: hosts on one L2 segment.

Every namespace carries the lab's prefix so `cleanup_prefix` can remove what a crashed
run left behind. Traffic never leaves these namespaces: the segment is a bridge in a
namespace of its own, with no link to the host's network.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from pathlib import Path


def run(*cmd: str, check: bool = True, timeout: float = 30) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def namespaces() -> list[str]:
    return [line.split()[0] for line in run("ip", "netns", "list").splitlines() if line.strip()]


def kill_all_in(name: str) -> None:
    """SIGKILL every process in the namespace until none is left; a process that exits
    (or forks) while we look is expected, not an error."""
    for _ in range(50):
        pids = [int(p) for p in run("ip", "netns", "pids", name, check=False).split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    raise RuntimeError(f"processes in netns {name} survive SIGKILL")


def kill_namespace(name: str) -> None:
    """Stop every process in the namespace, then delete it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [int(p) for p in run("ip", "netns", "pids", name, check=False).split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3
        while pids and time.monotonic() < deadline:
            pids = [int(p) for p in run("ip", "netns", "pids", name, check=False).split()]
            time.sleep(0.05)
        if not pids:
            break
    run("ip", "netns", "del", name, check=False)


def cleanup_prefix(prefix: str) -> None:
    for name in namespaces():
        if name.startswith(prefix):
            kill_namespace(name)


@dataclass
class Host:
    name: str
    netns: str
    interface: str
    addresses: list[IPv4Interface]

    @property
    def ip(self) -> str:
        return str(self.addresses[0].ip)

    def exec(self, *cmd: str, check: bool = True, timeout: float = 30) -> str:
        return run("ip", "netns", "exec", self.netns, *cmd, check=check, timeout=timeout)

    def popen(
        self, cmd: Sequence[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        out = log.open("ab")
        return subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *cmd],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


@dataclass
class Segment:
    """One L2 segment: a bridge inside its own namespace, hosts attached by veth."""

    prefix: str
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def switch(self) -> str:
        return f"{self.prefix}sw"

    def __post_init__(self) -> None:
        run("ip", "netns", "add", self.switch)
        self._sw("ip", "link", "set", "lo", "up")
        self._sw("ip", "link", "add", "br0", "type", "bridge")
        self._sw("ip", "link", "set", "br0", "up")

    def _sw(self, *cmd: str) -> str:
        return run("ip", "netns", "exec", self.switch, *cmd)

    def _plug(self, netns: str, interface: str) -> None:
        """A veth pair: `interface` in `netns`, its other end on this segment's bridge."""
        outer = f"v{len(self.hosts)}"
        run(
            "ip", "link", "add", outer, "netns", self.switch,
            "type", "veth", "peer", "name", interface, "netns", netns,
        )  # fmt: skip
        self._sw("ip", "link", "set", outer, "master", "br0", "up")

    def add_host(self, name: str, *addresses: str) -> Host:
        netns = f"{self.prefix}{name}"
        run("ip", "netns", "add", netns)
        self._plug(netns, "eth0")
        host = Host(name, netns, "eth0", [IPv4Interface(a) for a in addresses])
        host.exec("ip", "link", "set", "lo", "up")
        for address in host.addresses:
            host.exec("ip", "addr", "add", str(address), "dev", "eth0")
        host.exec("ip", "link", "set", "eth0", "up")
        self.hosts[name] = host
        return host

    def attach(self, host: Host, address: str, interface: str = "eth1") -> None:
        """Give a host of another segment a second interface here (a router's uplink)."""
        self._plug(host.netns, interface)
        host.exec("ip", "addr", "add", address, "dev", interface)
        host.exec("ip", "link", "set", interface, "up")
        self.hosts[f"{host.name}/{interface}"] = Host(
            host.name, host.netns, interface, [IPv4Interface(address)]
        )

    def close(self) -> None:
        for host in self.hosts.values():
            kill_namespace(host.netns)
        kill_namespace(self.switch)


@contextlib.contextmanager
def segment(prefix: str) -> Iterator[Segment]:
    cleanup_prefix(prefix)
    seg = Segment(prefix)
    try:
        yield seg
    finally:
        seg.close()
