"""Planner benchmark: 10,000 Services x 500 nodes x 4 peers x 8 floating IPs.

Run with `make bench-plan`. Prints a Markdown table for docs/BENCHMARKS.md. Each case
runs in its own child process so its peak RSS is its own. The addresses are only
data (nothing is sent anywhere), so they need not fit the RFC 5737 lab ranges.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from bgplb.api import AddressPool, BGPLoadBalancerSpec, BGPPeerSpec, NetworkGatewayGroupSpec
from bgplb.core.plan import plan, replan_services, with_decisions
from bgplb.core.snapshot import Node, Peer, Service, Snapshot

SERVICES, NODES, PEERS, FLOATING = 10_000, 500, 4, 8


def build(add_path: bool) -> Snapshot:
    nodes = tuple(
        Node(f"node-{i:03d}", (IPv4Interface((0x0A000000 + 10 + i, 22)),), {"lb": "true"})
        for i in range(NODES)
    )
    services = tuple(
        Service(
            f"ns-{i % 50}",
            f"svc-{i}",
            # One in ten is externalTrafficPolicy: Local with endpoints on three nodes.
            local_traffic=i % 10 == 0,
            endpoint_nodes=frozenset(nodes[(i * 7 + k) % NODES].name for k in range(3)),
        )
        for i in range(SERVICES)
    )
    lb = BGPLoadBalancerSpec(
        local_asn=65001,
        peer_selector={"dp": "true"},
        address_pools=[AddressPool(name="vips", addresses=["10.1.0.0/18"])],
        load_balancer_node_selector={"lb": "true"},
        add_path=add_path,
    )
    peers = tuple(
        Peer(
            f"tor{i}",
            {"dp": "true"},
            BGPPeerSpec(
                local_asn=65001,
                peer_asn=65100 + i,
                peer_ip=IPv4Address(f"10.0.3.{250 + i}"),
                sessions=2,
            ),
        )
        for i in range(PEERS)
    )
    gateway = NetworkGatewayGroupSpec(
        floating_ips=[IPv4Address(f"10.0.3.{200 + i}") for i in range(FLOATING)]
    )
    return Snapshot(lb, gateway, peers, nodes, services)


def _timed(fn: Any, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def case(name: str, add_path: bool, runs: int) -> dict[str, Any]:
    snapshot = build(add_path)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if name == "full-cold":
        times = _timed(lambda: plan(snapshot), runs)
    elif name == "full-steady":
        settled = with_decisions(snapshot, plan(snapshot))
        times = _timed(lambda: plan(settled), runs)
    elif name in ("one-new", "one-deleted"):
        before = plan(snapshot)
        settled = with_decisions(snapshot, before)
        if name == "one-new":
            after = replace(settled, services=(*settled.services, Service("new", "svc")))
            key = "new/svc"
        else:
            after = replace(settled, services=settled.services[1:])
            key = settled.services[0].key
        times = _timed(lambda: replan_services(before, after, {key}), runs)
    else:
        raise ValueError(name)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "case": name,
        "add_path": add_path,
        "runs": runs,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "peak_rss_mib": peak_kib / 1024,
        "input_rss_mib": base_rss / 1024,
    }


CASES = [
    ("full-cold", True, 7),
    ("full-steady", True, 7),
    ("one-new", True, 50),
    ("one-deleted", True, 50),
    ("full-cold", False, 7),
    ("full-steady", False, 7),
    ("one-new", False, 50),
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case")
    parser.add_argument("--add-path", type=int, default=1)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(case(args.case, bool(args.add_path), args.runs)))
        return 0
    print(f"{SERVICES} Services x {NODES} nodes x {PEERS} peers x {FLOATING} floating IPs\n")
    print("| case | ADD-PATH | runs | median | min | max | peak RSS (input alone) |")
    print("|---|---|---|---|---|---|---|")
    for name, add_path, runs in CASES:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--case",
                name,
                "--add-path",
                str(int(add_path)),
                "--runs",
                str(runs),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out)
        print(
            f"| {r['case']} | {'on' if r['add_path'] else 'off'} | {r['runs']} "
            f"| {r['median_s'] * 1000:.1f} ms | {r['min_s'] * 1000:.1f} ms "
            f"| {r['max_s'] * 1000:.1f} ms "
            f"| {r['peak_rss_mib']:.0f} MiB ({r['input_rss_mib']:.0f} MiB) |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
