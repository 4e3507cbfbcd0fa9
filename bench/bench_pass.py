"""One controller pass's CPU, step by step, in-process (no API server).

A pass on the way of a Service create reads every object the controller holds
(snapshot), plans, renders the route objects and compares them with the stored
ones; in the lab's Pods, with a 50m CPU request among busy processes, every
millisecond of it is stretched several times (docs/BENCHMARKS.md, Service create
step by step). Prints the mean of `--repeat` calls of each step, in ms, for
`--services` Services with a VIP each on four nodes and two peers. Run with
`make bench-pass`. The addresses are only data (nothing is sent anywhere).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from bgplb.api import BGPAdvertisedRouteSpec
from bgplb.controller.diff import diff_objects
from bgplb.controller.snapshot import ClusterState, snapshot_from
from bgplb.core.objects import route_objects, session_objects
from bgplb.core.plan import plan
from bgplb_lab.manifests import gateway, load_balancer, peer, service

NS = "kube-system"


def state(services: int) -> ClusterState:
    st = ClusterState(NS)
    st.load_balancers["default"] = load_balancer(
        peerSelector={"tor": "true"},
        loadBalancerNodeSelector={},
        addressPools=[{"name": "p", "addresses": ["203.0.113.0/24"]}],
        localASN=65001,
    )
    st.gateways["default"] = gateway("198.51.100.100", "198.51.100.101")
    for i in (1, 2):
        st.peers[f"tor{i}"] = peer(
            f"tor{i}", {"tor": "true"}, peerASN=65000, peerIP=f"198.51.100.{i}"
        )
    for i in range(1, 5):
        name, ip = f"n{i}", f"198.51.100.{10 + i}"
        st.nodes[name] = {
            "metadata": {"name": name, "labels": {}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
        }
        lease = f"bgplb-node-{name}"
        annotations = {"networking.bgplb.io/addresses": f"{ip}/24"}
        st.leases[lease] = {"metadata": {"name": lease, "annotations": annotations}, "spec": {}}
        st.lease_seen[lease] = time.monotonic()
    for i in range(services):
        svc = service(f"s{i}")
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": f"203.0.113.{i % 250 + 1}"}]}}
        st.services[f"default/s{i}"] = svc
    return st


def mean_ms(fn: Callable[[], Any], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    st = state(args.services)
    now = time.monotonic()
    snapshot, problems = snapshot_from(st, now, 3.0)
    assert not problems, problems
    desired = plan(snapshot)
    # The cluster holds what the last pass wrote, as the API server returns it.
    for obj in route_objects(desired, NS):
        st.routes[obj["metadata"]["name"]] = json.loads(json.dumps(obj))
    for obj in session_objects(desired, NS):
        st.sessions[obj["metadata"]["name"]] = json.loads(json.dumps(obj))
    steps = {
        "snapshot": lambda: snapshot_from(st, now, 3.0),
        "plan": lambda: plan(snapshot),
        "route objects": lambda: route_objects(desired, NS),
        "diff routes": lambda: diff_objects(
            route_objects(desired, NS), st.routes, BGPAdvertisedRouteSpec
        ),
    }
    print(f"{args.services} Services, {len(st.routes)} route objects: mean ms of {args.repeat}")
    for name, fn in steps.items():
        print(f"  {name:14} {mean_ms(fn, args.repeat):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
