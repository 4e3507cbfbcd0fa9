"""Where a Service create's time goes, step by step, on the real-node lab.

bench-versus times Service create → VIP in both ToRs' kernels as one figure; this
splits it along bgplb's path, for `--services` Services created one at a time:

- create returned → its BGPAdvertisedRoute seen by a watch (the controller's event,
  debounce, plan and write), and the controller's own figures for the pass that
  wrote it (its "reconciled" line): from its event to the objects written, and of
  that the wait for the pass, the planning and the writes;
- create returned → the Service's status seen by a watch (the controller's other
  write, after the routes);
- create returned → each load-balancer node's agent logging "speaker updated", and
  the agent's own figures: from its watch seeing the change to gobgpd holding it,
  and of that the wait for its reconcile, reading its inputs and gobgpd's calls;
- create returned → the VIP in each ToR's kernel (the UPDATE, the ToR's best path,
  its FIB), as the kernel's routing events stamped it (`ip -ts monitor route`).

The watches run where the API server is (its namespace), the ToRs' kernels report
their own changes (no polling, no API call), and the agents' lines come from the
nodes' disks: every time is on the machine's one clock. Prints each Service's
steps, then p50 / p90 / max per step. Run with `make bench-create-path`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bgplb_lab import drills, metallb, versus
from bgplb_lab.drills import LB_NODES
from bgplb_lab.kubelets import BACKEND_PORT, KubeletLab
from bgplb_lab.manifests import NAMESPACE

SYSTEMS = ("bgplb", "metallb")

WATCHER = """
import json, sys, threading, time
from kubernetes import client, config, watch
config.load_kube_config(sys.argv[1])
NAMESPACE = sys.argv[2]
core, custom = client.CoreV1Api(), client.CustomObjectsApi()

lock = threading.Lock()

def say(**fields):
    # One write per line under a lock: print() from two threads can interleave a
    # line's text and its newline.
    with lock:
        sys.stdout.write(json.dumps({"t": time.time(), **fields}) + "\\n")
        sys.stdout.flush()

def forever(follow):
    while True:  # a watch the API server ends (or refuses to resume) starts over
        try:
            follow()
        except Exception as e:
            say(kind="error", error=str(e)[:200])
            time.sleep(0.1)

def services():
    for event in watch.Watch().stream(core.list_namespaced_service, "default"):
        balancer = event["object"].status.load_balancer
        ingress = (balancer.ingress or []) if balancer else []
        say(kind="service", name=event["object"].metadata.name, ips=[i.ip for i in ingress])

def routes():
    for event in watch.Watch().stream(
        custom.list_namespaced_custom_object, "networking.bgplb.io", "v1", NAMESPACE,
        "bgpadvertisedroutes",
    ):
        obj = event["object"]
        say(kind="route", type=event["type"], prefix=obj["spec"]["prefix"])

threading.Thread(target=forever, args=(routes,), daemon=True).start()
say(kind="ready")
forever(services)
"""


def _seconds(ts: str) -> float:
    """A log line's `ts` (python-json-logger's asctime, the machine's local time)."""
    return dt.datetime.strptime(ts, "%Y-%m-%d %H:%M:%S,%f").timestamp()


AGENT_FIELDS = {
    "since_change_s": "its watch→gobgpd",
    "queued_s": "queued",
    "read_s": "reading inputs",
    "speaker_s": "gobgpd calls",
}
"""The agent's own figures on its "speaker updated" line → the step they name."""

CONTROLLER_FIELDS = {
    "since_change_s": "its event→objects written",
    "waited_s": "waited for the pass",
    "plan_s": "planning",
    "objects_s": "the objects",
    "diff_s": "building and diffing them",
    "writes_s": "their writes",
}
"""The controller's own figures on its "reconciled" line → the step they name."""


def _figures(
    log: str, message: str, fields: dict[str, str]
) -> list[tuple[float, dict[str, float]]]:
    """When `message` was logged, with the process's own figures on each line (NaN
    where a line does not give one), in time order."""
    out = []
    for record in drills.logged(log, message):
        figures = {k: math.nan if record.get(k) is None else float(record[k]) for k in fields}
        out.append((_seconds(record["ts"]), figures))
    return sorted(out, key=lambda p: p[0])


class Watcher:
    """The watch script's lines, kept with the time they were printed."""

    def __init__(self, lab: KubeletLab) -> None:
        self.lines: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [*lab.api_script(WATCHER), NAMESPACE], stdout=subprocess.PIPE, text=True
        )
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(30):
            raise TimeoutError("the watch script did not start")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            record = json.loads(line)
            if record["kind"] == "ready":
                self.ready.set()
            self.lines.append(record)

    def first(self, after: float, **match: Any) -> float | None:
        for record in list(self.lines):
            if record["t"] >= after and all(record.get(k) == v for k, v in match.items()):
                return float(record["t"])
        return None

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run(lab: KubeletLab, count: int, who: str) -> list[dict[str, float]]:
    """`count` Services of `who` (bgplb or metallb), each split into its steps."""
    watcher = Watcher(lab)
    try:
        return _timed(lab, count, who, watcher)
    finally:
        watcher.close()


def _timed(lab: KubeletLab, count: int, who: str, watcher: Watcher) -> list[dict[str, float]]:
    marks = []
    with versus.creating(lab) as create:
        for i in range(count):
            svc = metallb.service(f"path-{who}-{i}", {"app": "demo"}, 80, BACKEND_PORT)
            if who == "bgplb":
                del svc["spec"]["loadBalancerClass"]
            marks.append(create(svc))
            time.sleep(0.3)  # the Service's status and the log lines trail the ToRs
    updates, passes = {}, []
    if who == "bgplb":
        updates = {
            node: _figures(lab.agent_log(node), "speaker updated", AGENT_FIELDS)
            for node in LB_NODES
        }
        passes = _figures(lab.controller_log(), "reconciled", CONTROLLER_FIELDS)
    out = []
    for m in marks:
        created = m.created
        route = watcher.first(created - 1, kind="route", prefix=f"{m.vip}/32")
        status = next(
            (r["t"] for r in watcher.lines if r["kind"] == "service" and m.vip in r["ips"]),
            None,
        )
        steps = {"create call": created - m.sent}
        if who == "bgplb":
            steps["route object"] = (route - created) if route else math.nan
            # The pass that wrote it: the first to log after the create returned.
            wrote = next((p for p in passes if p[0] >= created - 0.01), None)
            if wrote is not None:
                for key, step in CONTROLLER_FIELDS.items():
                    steps[f"  {step}"] = wrote[1][key]
        steps["service status"] = (status - created) if status else math.nan
        for node, times in updates.items():
            after = [u for u in times if route is not None and u[0] >= route - 0.01]
            if not after:
                continue
            logged, figures = min(after, key=lambda u: u[0])
            steps[f"agent {node}"] = logged - created
            for key, step in AGENT_FIELDS.items():
                steps[f"  {step} {node}"] = figures[key]
        for tor, t in m.tors.items():
            steps[f"ToR {tor}"] = t - created
        print(json.dumps({"who": who, "vip": m.vip, **{k: round(v, 3) for k, v in steps.items()}}))
        out.append(steps)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=30)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--metallb", action="store_true", help="also MetalLB v0.15.2 (native BGP mode) beside it"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bgplb-bench-path-"))
    lab = KubeletLab(workdir, prefix="bp-", log=False)
    try:
        lab.up()
        drills.wait_stable(lab)
        versus._bgplb_pool(lab)
        if args.metallb:
            versus.setup(lab)
        steps = {who: run(lab, args.services, who) for who in SYSTEMS[: 1 + args.metallb]}
    finally:
        lab.down()
    for who, runs in steps.items():
        print(f"\n{who}: step (seconds after the create returned): p50 / p90 / max")
        for name in dict.fromkeys(k for r in runs for k in r):
            values = sorted(s[name] for s in runs if not math.isnan(s.get(name, math.nan)))
            if values:
                p90 = values[max(0, math.ceil(0.9 * len(values)) - 1)]
                print(
                    f"  {name:24} {statistics.median(values):.3f} / {p90:.3f} / {max(values):.3f}"
                    f" (n = {len(values)})"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
