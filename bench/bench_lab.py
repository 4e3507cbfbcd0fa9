"""Lab benchmark: the whole system in network namespaces, repeated for medians.

- Service create → its VIP in the kernel of both ToRs (FRR and BIRD), one Service at
  a time, for 60 Services: p50/p99. The create runs inside the API server's
  namespace (the only place that reaches it), timed from when the create returned.
- LB-node failure → client traffic restored; floating-IP holder failure → a session
  from that IP Established on another node; agent and controller restarts → failed
  requests and session flaps. Each drill from bgplb_lab.drills, RUNS times.

Run with `make bench-lab`; `--runs` and `--services` scale it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bgplb_lab import drills
from bgplb_lab.topology import Lab

BENCH_POOL = "203.0.113.64-203.0.113.127"

CREATOR = """
import json, sys, time
from kubernetes import client, config
config.load_kube_config(sys.argv[1])
core = client.CoreV1Api()
for line in sys.stdin:
    name = line.strip()
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
    core.create_namespaced_service("default", body)
    print(json.dumps({"name": name, "t": time.time()}), flush=True)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def service_latency(lab: Lab, count: int) -> list[float]:
    lb = lab.get("bgploadbalancer", "default")
    pools = lb["spec"]["addressPools"] + [{"name": "bench", "addresses": [BENCH_POOL]}]
    lab.kubectl(
        "patch", "bgploadbalancer", "default", "--type=merge",
        "-p", json.dumps({"spec": {"addressPools": pools}}),
    )  # fmt: skip
    creator = subprocess.Popen(
        lab.api_script(CREATOR), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert creator.stdin is not None
    assert creator.stdout is not None
    latencies = []
    known = lab.tor_next_hops  # per call: both ToRs' kernel routes for one prefix
    try:
        for i in range(count):
            name = f"bench-{i}"
            creator.stdin.write(name + "\n")
            creator.stdin.flush()
            created = json.loads(creator.stdout.readline())["t"]
            vip = None
            while True:
                vip = vip or _ingress(lab, name)
                if vip and all(known(f"{vip}/32").values()):
                    break
                time.sleep(0.01)
            latencies.append(time.time() - created)
    finally:
        creator.stdin.close()
        creator.wait(10)
    for i in range(count):
        lab.kubectl("delete", "service", f"bench-{i}", "-n", "default", "--wait=false")
    return latencies


def _ingress(lab: Lab, name: str) -> str | None:
    out = lab.kubectl(
        "get", "service", name, "-n", "default",
        "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}",
    )  # fmt: skip
    return out.strip() or None


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.2f} s, min {min(values):.2f} s, "
        f"max {max(values):.2f} s (n={len(values)})"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--services", type=int, default=60)
    args = p.parse_args()
    lab = Lab(Path(tempfile.mkdtemp(prefix="bgplb-bench-lab-")), prefix="bb-", log=False)
    results: dict[str, Any] = {}
    try:
        lab.up()
        drills.wait_stable(lab)
        lat = service_latency(lab, args.services)
        results["service create → VIP in both ToRs' kernels"] = (
            f"p50 {percentile(lat, 0.5) * 1000:.0f} ms, p99 {percentile(lat, 0.99) * 1000:.0f} ms,"
            f" max {max(lat) * 1000:.0f} ms (n={len(lat)})"
        )
        print(results, flush=True)
        drill_runs: dict[str, list[drills.Result]] = {}
        for _ in range(args.runs):
            for drill in (
                drills.lb_node_failure,
                drills.floating_ip_node_failure,
                drills.agent_restart,
                drills.controller_restart,
            ):
                result = drill(lab)
                print(result, flush=True)
                drill_runs.setdefault(result.name, []).append(result)
        for name, runs in drill_runs.items():
            for key in ("traffic_restored_s", "route_withdrawn_s", "established_elsewhere_s"):
                values = [r.figures[key] for r in runs if key in r.figures]
                if values:
                    results[f"{name}: {key}"] = summary(values)
            failed = [r.figures["failed_requests"] for r in runs]
            results[f"{name}: failed requests per run"] = failed
            if "flaps" in runs[0].figures:
                results[f"{name}: session flaps per run"] = [len(r.figures["flaps"]) for r in runs]
    finally:
        lab.down()
    print("\n".join(f"{k}: {v}" for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
