"""`bgplb preflight`: before a cluster relies on it, check each peer of this node.

For every peer: establish a session from `localIP`, advertise the VIP, and check the
VIP's traffic comes back — a ping to the peer sourced from the VIP is answered only
if the peer accepted the route and routes the VIP to this node. A peer that fails
gets the reason gobgpd saw (connection refused, ASN mismatch, no answer, the peer's
notification). Prints pass/fail per peer; exits non-zero if any failed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pyroute2 import IPRoute

from bgplb.advertise import AdvertiserConfig, load_config, local_gobgpd, speaker_config

_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


@dataclass(frozen=True)
class Result:
    peer: ipaddress.IPv4Address
    passed: bool
    reason: str


def diagnose(log_text: str, peer: ipaddress.IPv4Address) -> str | None:
    """The last failure gobgpd logged for `peer`, in words; None if none."""
    reason = None
    for line in log_text.splitlines():
        fields = {k: v.strip('"') for k, v in _FIELD.findall(line)}
        if fields.get("Key") != str(peer):
            continue
        msg, data, error = fields.get("msg", ""), fields.get("Data", ""), fields.get("Error", "")
        if msg == "sent notification" and "as number mismatch" in data:
            reason = f"ASN mismatch: {data}"
        elif msg == "received notification":
            reason = f"the peer refused the session: {data or line}"
        elif msg == "failed to connect" and "refused" in error:
            reason = (
                "connection refused: nothing accepts BGP (TCP 179) from this address on the peer"
            )
        elif msg == "failed to connect":
            reason = f"no answer from the peer: {error}"
    return reason


def _ping_from(vip: ipaddress.IPv4Address, peer: ipaddress.IPv4Address) -> bool:
    done = subprocess.run(
        ["ping", "-c", "2", "-W", "1", "-I", str(vip), str(peer)],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return done.returncode == 0


def _vip_on_loopback(vip: ipaddress.IPv4Address, present: bool) -> bool:
    """Put the VIP on lo (or take it off); True if this call changed anything.

    While it is there, the peer's answers to the VIP are ours to receive. pyroute2's
    synchronous API runs its own event loop, so callers use a worker thread.
    """
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname="lo")[0]
        there = any(a.get_attr("IFA_ADDRESS") == str(vip) for a in ipr.get_addr(index=index))
        if there == present:
            return False
        ipr.addr("add" if present else "del", index=index, address=str(vip), prefixlen=32)
        return True


async def check(
    config: AdvertiserConfig, vip: ipaddress.IPv4Address, timeout: float
) -> list[Result]:
    results: list[Result] = []
    async with local_gobgpd("debug") as (speaker, log_path):
        desired = speaker_config(config, vip)
        await speaker.apply(desired)
        deadline = time.monotonic() + timeout
        pending = set(desired.peers)
        while pending and time.monotonic() < deadline:
            states = await speaker.peer_status()
            pending = {
                p for p in pending if states.get(p) is None or states[p].state != "Established"
            }
            await asyncio.sleep(0.5)
        added = await asyncio.to_thread(_vip_on_loopback, vip, True)
        try:
            await asyncio.sleep(1)  # let the peers install the route
            for peer in sorted(desired.peers):
                if peer in pending:
                    why = diagnose(log_path.read_text(), peer) or (
                        f"no session within {timeout:.0f} s (no answer from the peer)"
                    )
                    results.append(Result(peer, False, why))
                elif await asyncio.to_thread(_ping_from, vip, peer):
                    results.append(
                        Result(peer, True, "Established; the peer routes the VIP back here")
                    )
                else:
                    results.append(
                        Result(
                            peer,
                            False,
                            "no route back: the session is up but "
                            "traffic to the VIP does not come back",
                        )
                    )
        finally:
            if added:
                await asyncio.to_thread(_vip_on_loopback, vip, False)
        await speaker.apply(type(desired)(desired.asn, desired.router_id))
    return results


def from_load_balancer(path: Path, node_ip: ipaddress.IPv4Address) -> tuple[AdvertiserConfig, str]:
    """This node's control-plane pairs from a BGPLoadBalancer manifest, and its VIP."""
    return control_plane_pairs(yaml.safe_load(path.read_text()), node_ip, where=str(path))


def control_plane_pairs(
    doc: Any, node_ip: ipaddress.IPv4Address, where: str = "BGPLoadBalancer"
) -> tuple[AdvertiserConfig, str]:
    """This node's control-plane pairs from a BGPLoadBalancer object, and its VIP;
    SystemExit naming the field when it has none for this node."""
    from bgplb.api import BGPLoadBalancer
    from bgplb.core.validate import InvalidObjectError, load

    try:
        lb = load(doc)
    except InvalidObjectError as e:
        raise SystemExit("\n".join(f"{where}: {err}" for err in e.errors)) from None
    if not isinstance(lb, BGPLoadBalancer) or lb.spec.control_plane is None:
        raise SystemExit(f"{where}: spec.controlPlane: required (a BGPLoadBalancer with peers)")
    if lb.spec.local_asn is None:
        raise SystemExit(
            f"{where}: spec.localASN: required here (only the BGPLoadBalancer is read, "
            "not the BGPPeers it could be taken from)"
        )
    cp = lb.spec.control_plane
    peers = [
        {"peerIP": str(p.ip), "peerASN": p.asn}
        for p in cp.peers
        if not p.control_plane_nodes or node_ip in p.control_plane_nodes
    ]
    if not peers:
        raise SystemExit(f"{where}: spec.controlPlane.peers: none is mapped to node {node_ip}")
    config = AdvertiserConfig.model_validate(
        {"localIP": str(node_ip), "localASN": lb.spec.local_asn, "peers": peers}
    )
    return config, str(cp.vip or "")


def run(config_path: Path, vip_text: str | None, timeout: float, node_ip: str | None = None) -> int:
    if node_ip is not None:
        config, lb_vip = from_load_balancer(config_path, ipaddress.IPv4Address(node_ip))
        vip_text = vip_text or lb_vip
    else:
        config = load_config(config_path)
    if not vip_text:
        raise SystemExit("--advertise-ip: required (the manifest has no spec.controlPlane.vip)")
    try:
        vip = ipaddress.IPv4Address(vip_text)
    except ValueError:
        raise SystemExit(f"--advertise-ip: {vip_text!r} is not an IPv4 address") from None
    results = asyncio.run(check(config, vip, timeout))
    for r in results:
        print(f"{config.local_ip} -> {r.peer}: {'PASS' if r.passed else 'FAIL'}: {r.reason}")
    failed = [r for r in results if not r.passed]
    if failed:
        print(f"preflight failed for {len(failed)} of {len(results)} peer(s)", file=sys.stderr)
        return 1
    return 0
