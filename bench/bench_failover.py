"""Failover on the real-node lab: Lease-only against the agents' mesh and BFD, in one run.

For each configuration a lab is brought up (seed example 3, the chart's Pods, both
ToRs running BFD), then `--runs` LB-node failures and `--runs` floating-IP holder
failures, alternating (drills.lb_node_failure / drills.floating_ip_node_failure,
the same code the e2e tests assert on), each with the demo Pods kept off the node
that dies so "traffic restored" times the fabric, not kube-proxy. Prints every
run's figures, then median / p90 / max per figure and configuration.

Run with `make bench-failover`; `--runs`, `--configs` and `--drills` scale it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bgplb_lab import drills
from bgplb_lab.kubelets import KubeletLab

CONFIGS: dict[str, dict[str, bool]] = {
    "lease-only": {"mesh": False, "bfd": False},
    "mesh": {"mesh": True, "bfd": False},
    "mesh+bfd": {"mesh": True, "bfd": True},
}
FIGURES = {
    "lb-node failure": ("route_withdrawn_s", "traffic_restored_s", "failed_requests"),
    "floating-IP node failure": (
        "next_hop_gone_s",
        "established_elsewhere_s",
        "traffic_restored_s",
        "failed_requests",
        "samples_without_route",
    ),
}


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def summary(results: list[drills.Result]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for drill, names in FIGURES.items():
        runs = [r.figures for r in results if r.name == drill]
        for name in names:
            values = [float(f[name]) for f in runs if f.get(name) is not None]
            if values:
                out.setdefault(drill, {})[name] = (
                    f"median {statistics.median(values):.2f}, p90 {p90(values):.2f}, "
                    f"max {max(values):.2f} (n = {len(values)})"
                )
    return out


def state_of(lab: KubeletLab) -> str:
    """What the sessions looked like when a run failed, from both sides."""
    views = [
        ("kubectl get bgpsessions", lambda: lab.kubectl("get", "bgpsessions", "-o", "wide")),
        ("FRR: show bgp summary", lambda: lab.frr.vtysh("show bgp summary")),
        ("BIRD: show protocols", lambda: lab.bird.birdc("show protocols")),
        ("floating IPs on the nodes", lambda: json.dumps(lab.plumbed())),
    ]
    out = []
    for title, view in views:
        try:
            out += [f"$ {title}", view()]
        except Exception as e:  # the lab may be half broken: show what can be seen
            out += [f"$ {title}", f"failed: {e}"]
    return "\n".join(out)


DRILLS = {
    "lb-node": drills.lb_node_failure,
    "floating-ip": drills.floating_ip_node_failure,
}


def run(config: str, runs: int, which: list[str]) -> list[drills.Result]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bgplb-bench-failover-{config}-"))
    lab = KubeletLab(workdir, prefix="bf-", log=False, **CONFIGS[config])
    results: list[drills.Result] = []
    try:
        lab.up()
        drills.wait_stable(lab)
        for i in range(runs):
            for name in which:
                # The demo Pods kept off the victim: "traffic restored" then times the
                # fabric, not kube-proxy dropping a dead node's Pod (~20 s).
                result = DRILLS[name](lab, backends_elsewhere=True)
                print(f"{config} run {i + 1}: {result}", flush=True)
                results.append(result)
    except BaseException:
        (workdir / "failure-state.txt").write_text(state_of(lab))
        lab.stop()  # the logs stay, for the failure
        print(f"lab logs kept in {workdir}", flush=True)
        raise
    lab.down()
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    p.add_argument("--drills", nargs="+", choices=list(DRILLS), default=list(DRILLS))
    args = p.parse_args()
    table: dict[str, Any] = {}
    for config in args.configs:
        table[config] = summary(run(config, args.runs, args.drills))
        print(json.dumps({config: table[config]}, indent=2), flush=True)
    print(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
