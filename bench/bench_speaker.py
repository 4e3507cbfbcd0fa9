"""Speaker benchmark: program 10,000 /32 paths into gobgpd through the driver, and time
until an FRR ToR holds them all; baseline: `gobgp global rib add` in a loop.

Run with `make bench-speaker` (root: it builds network namespaces). Prefixes come
from 198.18.0.0/15, the range RFC 2544 sets aside for benchmarks; they only ever
reach the FRR namespace of this run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from bgplb.agent.speaker.gobgp import GoBGPSpeaker
from bgplb.agent.speaker.model import PathConfig, PeerConfig, SpeakerConfig
from bgplb_lab.daemons import FRR, GoBGPd, wait_for
from bgplb_lab.netns import segment

BASE = int(IPv4Address("198.18.0.0"))
NODE, TOR = IPv4Address("192.0.2.11"), IPv4Address("192.0.2.1")


def paths(count: int) -> frozenset[PathConfig]:
    return frozenset(PathConfig(IPv4Network((BASE + i, 32)), NODE) for i in range(count))


def received(frr: FRR) -> int:
    peers = frr.json("show bgp ipv4 unicast summary").get("peers", {})
    return int(peers.get(str(NODE), {}).get("pfxRcd", 0))


async def driver_run(gobgpd: GoBGPd, frr: FRR, count: int) -> tuple[float, float, float]:
    """(seconds to apply, seconds until the ToR holds all, seconds to withdraw all)."""
    speaker = GoBGPSpeaker(gobgpd.target)
    peer = PeerConfig(TOR, 65000, 65001, NODE, connect_retry=1)
    base = SpeakerConfig(65001, NODE, {TOR: peer})
    try:
        await speaker.apply(base)
        wait_for("session", lambda: str(NODE) in frr.established(), timeout=60)
        started = time.perf_counter()
        await speaker.apply(SpeakerConfig(65001, NODE, {TOR: peer}, paths(count)))
        applied = time.perf_counter() - started
        wait_for("all paths on the ToR", lambda: received(frr) >= count, timeout=300, every=0.05)
        on_tor = time.perf_counter() - started
        started = time.perf_counter()
        await speaker.apply(base)
        withdrawn = time.perf_counter() - started
        wait_for("ToR empty", lambda: received(frr) == 0, timeout=300, every=0.05)
        return applied, on_tor, withdrawn
    finally:
        await speaker.close()


def cli_baseline(gobgpd: GoBGPd, count: int) -> float:
    """Seconds for `count` runs of `gobgp global rib add` (the CLI, one process per path)."""
    started = time.perf_counter()
    for i in range(count):
        prefix = IPv4Network((BASE + 60000 + i, 32))
        gobgpd.host.exec("gobgp", "global", "rib", "add", str(prefix), "nexthop", str(NODE))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--paths", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-paths", type=int, default=500)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bgplb-bench-"))
    work.chmod(0o755)
    with segment(f"bb{os.getpid() % 10000}-") as seg:
        tor = seg.add_host("tor", f"{TOR}/24")
        node = seg.add_host("node", f"{NODE}/24")
        frr = FRR(tor, work, 65000, IPv4Network("192.0.2.0/24"), 65001).start()
        gobgpd = GoBGPd(node, work).start()
        try:
            runs = [asyncio.run(driver_run(gobgpd, frr, args.paths)) for _ in range(args.runs)]
            baseline = cli_baseline(gobgpd, args.baseline_paths)
        finally:
            gobgpd.stop()
            frr.stop()
            shutil.rmtree(work, ignore_errors=True)
    applied = [r[0] for r in runs]
    on_tor = [r[1] for r in runs]
    withdrawn = [r[2] for r in runs]
    rate = [args.paths / a for a in applied]
    print(f"{args.paths} /32 paths, {args.runs} runs; baseline {args.baseline_paths} CLI adds\n")
    print("| measure | median | min | max |")
    print("|---|---|---|---|")
    for name, values, unit in (
        ("driver apply (paths/s)", rate, "/s"),
        ("driver apply (s)", applied, " s"),
        ("apply → all on FRR (s)", on_tor, " s"),
        ("withdraw all (s)", withdrawn, " s"),
    ):
        print(
            f"| {name} | {statistics.median(values):,.2f}{unit} | {min(values):,.2f}{unit} "
            f"| {max(values):,.2f}{unit} |"
        )
    print(
        f"| `gobgp global rib add` loop (paths/s) | {args.baseline_paths / baseline:,.1f}/s | | |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
