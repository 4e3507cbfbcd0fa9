"""bgplb against MetalLB v0.15.2 (native BGP mode), in one lab, in one run.

The real-node lab (seed example 3, the chart's Pods, both ToRs), MetalLB installed
beside bgplb (lab/bgplb_lab/metallb.py: same ToRs, same demo Pods, same hold and
keepalive timers), then the drills of lab/bgplb_lab/versus.py — the code the e2e
tests in e2e/test_metallb.py assert on:

- Service create → VIP in both ToRs' kernels, `--services` each, one at a time;
- 1,000 Services created back to back → all on both ToRs (`--bulk`; 25 to a VIP by
  each system's sharing annotation: the lab's test ranges hold ~120 VIPs);
- LB-node failure → next hop withdrawn, traffic restored (both VIPs at once),
  `--runs` times;
- speaker restart → failed requests and session flaps, `--runs` times.

Prints every run, then per figure median / p90 / max for each system and the ratio
bgplb / MetalLB of the medians. Run with `make bench-versus`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bgplb_lab import drills, versus
from bgplb_lab.kubelets import KubeletLab

SYSTEMS = ("bgplb", "metallb")


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def line(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.3f}, p90 {p(values, 0.9):.3f}, "
        f"p99 {p(values, 0.99):.3f}, max {max(values):.3f} (n = {len(values)})"
    )


def ratio(figures: dict[str, list[float]]) -> str:
    ours, theirs = (statistics.median(figures[s]) for s in SYSTEMS)
    return f"{ours / theirs:.2f}" if theirs else "n/a (MetalLB median 0)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--services", type=int, default=30)
    parser.add_argument("--bulk", type=int, default=1000)
    args = parser.parse_args()
    lab = KubeletLab(Path(tempfile.mkdtemp(prefix="bgplb-bench-versus-")), prefix="bv-", log=False)
    figures: dict[str, dict[str, list[float]]] = {}

    def note(drill: str, name: str, who: str, value: float | None) -> None:
        if value is not None:
            figures.setdefault(f"{drill}: {name}", {}).setdefault(who, []).append(value)

    try:
        lab.up()
        drills.wait_stable(lab)
        vip = versus.setup(lab)
        created = versus.service_create(lab, args.services)
        for who, values in created.items():
            for value in values:
                note("service create", "on both ToRs s", who, value)
        print(json.dumps(created), flush=True)
        for who, f in (versus.bulk(lab, count=args.bulk) if args.bulk else {}).items():
            print(f"1,000 Services ({who}): {f}", flush=True)
            note("bulk create", "all on both ToRs s", who, f["all_on_tors_s"])
        for i in range(args.runs):
            for drill in (versus.lb_node_failure, versus.speaker_restart):
                for who, result in drill(lab, vip).items():
                    print(f"run {i + 1}: {result}", flush=True)
                    name = result.name.split(" (")[0]
                    for key in ("route_withdrawn_s", "traffic_restored_s", "failed_requests"):
                        note(name, key, who, result.figures.get(key))
                    if "flaps" in result.figures:
                        note(name, "flaps", who, len(result.figures["flaps"]))
    except BaseException:
        # Run 4 stopped on a VIP that did not come back, and its logs went with the lab:
        # with BGPLB_KEEP_LOGS set, keep the work directory and what the API held.
        if os.environ.get("BGPLB_KEEP_LOGS"):
            kinds = "bgpadvertisedroutes,bgpsessions,networkgatewaygroups,leases,pods"
            state = lab.api.kubectl("get", kinds, "-A", "-o", "yaml", check=False)
            (lab.workdir / "state-at-failure.yaml").write_text(state)
            print(f"lab kept for its logs: {lab.workdir}", file=sys.stderr, flush=True)
            lab.stop()
        else:
            lab.down()
        raise
    lab.down()
    for figure, by_system in figures.items():
        print(figure)
        for who in SYSTEMS:
            if who in by_system:
                print(f"  {who:8} {line(by_system[who])}")
        if all(s in by_system for s in SYSTEMS):
            print(f"  bgplb / MetalLB (medians): {ratio(by_system)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
