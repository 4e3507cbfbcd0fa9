"""`make bench-idle`: what the real-node lab costs while nothing happens, by process.

Brings up the lab (seed example 3, the chart's Pods), lets it settle, then samples
every process's CPU (user + system, from /proc) over `--seconds`, `--rounds` times,
and prints each group's share of one core per round and the median. Processes are
grouped by their kernel name; bgplb's own processes that share the name `bgplb` by
their subcommand (`bgplb advertise`, the control-plane VIP's static Pods; `bgplb
bfd`, the speakers' BFD sidecars). Everything on the machine is counted, the lab's
and not: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bgplb_lab import cpu, drills
from bgplb_lab.kubelets import KubeletLab


def _group(pid: int, name: str) -> str:
    if name != "bgplb":
        return name
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return name
    return f"bgplb {argv[2].decode()}" if len(argv) > 2 else name


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """pid → (group, CPU seconds so far)."""
    return {pid: (_group(pid, name), sec) for pid, (name, sec) in cpu.processes().items()}


def sample(seconds: float) -> dict[str, float]:
    """Each group's share of one core over `seconds` (processes alive throughout)."""
    before, started = cpu_by_process(), time.monotonic()
    time.sleep(seconds)
    after, elapsed = cpu_by_process(), time.monotonic() - started
    shares: dict[str, float] = collections.defaultdict(float)
    for pid, (group, used) in after.items():
        if pid in before:
            shares[group] += (used - before[pid][1]) / elapsed
    return dict(shares)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=30, help="seconds after the lab is up")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    lab = KubeletLab(Path(tempfile.mkdtemp(prefix="bgplb-bench-idle-")), prefix="bi-", log=False)
    rounds = []
    try:
        lab.up()
        drills.wait_stable(lab)
        time.sleep(args.settle)
        for i in range(args.rounds):
            rounds.append(sample(args.seconds))
            print(f"round {i + 1}: {sum(rounds[-1].values()):.1%} of a core", flush=True)
    finally:
        lab.down()
    groups = {g for r in rounds for g in r}
    median = {g: statistics.median(r.get(g, 0.0) for r in rounds) for g in groups}
    print(f"\nshare of one core over {args.seconds:.0f} s, median of {args.rounds} rounds:")
    print(f"  {'everything':24} {sum(median.values()):7.1%}")
    for group, share in sorted(median.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {group:24} {share:7.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
