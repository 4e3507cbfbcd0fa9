"""Controller benchmark against a real kube-apiserver: a burst of Services, then single
Services one at a time.

Measures: time until every Service of the burst has its VIP in status and its
BGPAdvertisedRoute; API writes per Service (the controller's own counter); the
controller's peak RSS; Service-create → VIP-in-status latency, p50/p99, in the burst
and for Services created one at a time. Run with `make bench-controller`.
VIPs come from 198.18.0.0/15 (RFC 2544's benchmarking range): nothing is advertised.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml

from bgplb_lab.daemons import stop_processes, wait_for
from bgplb_lab.kube import free_port, remove, temporary
from bgplb_lab.manifests import gateway, load_balancer, peer, service

NS = "kube-system"
NODES = {"n1": "192.0.2.11", "n2": "192.0.2.12", "n3": "192.0.2.13"}
CONFIG = [
    load_balancer(
        peerSelector={"tor": "true"},
        loadBalancerNodeSelector={},
        addressPools=[{"name": "bench", "addresses": ["198.18.0.0/20"]}],
    ),
    gateway("192.0.2.100"),
    peer("tor", {"tor": "true"}, peerASN=65000, peerIP="192.0.2.1"),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Watcher:
    """Records when each Service first shows an ingress IP (from a watch stream)."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.vip_at: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        from kubernetes import watch

        w = watch.Watch()
        try:
            for event in w.stream(self.core.list_namespaced_service, "bench", timeout_seconds=0):
                svc = event["object"]
                ingress = svc.status.load_balancer.ingress if svc.status.load_balancer else None
                if ingress and svc.metadata.name not in self.vip_at:
                    self.vip_at[svc.metadata.name] = time.monotonic()
                if self.stop.is_set():
                    w.stop()
        except Exception:  # the API server goes away when the benchmark ends
            return


def renew_leases(api: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for node, ip in NODES.items():
            body = {
                "metadata": {
                    "name": f"bgplb-node-{node}",
                    "annotations": {"networking.bgplb.io/addresses": f"{ip}/24"},
                },
                "spec": {"holderIdentity": node, "leaseDurationSeconds": 3, "renewTime": now},
            }
            try:
                api.patch_namespaced_lease(f"bgplb-node-{node}", NS, body)
            except Exception:
                api.create_namespaced_lease(NS, body)
        stop.wait(1)


def writes_total(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("bgplb_api_writes_total "):
                return float(line.split()[1])
    return 0.0


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--single", type=int, default=50)
    args = parser.parse_args()
    from kubernetes import client, config

    api = temporary("bgplb-bench-kube-")
    stop = threading.Event()
    controller = None
    try:
        api.start()
        api.kubectl("apply", "--server-side", "-f", "crds/")
        api.kubectl("wait", "--for=condition=Established", "crd", "--all")
        api.kubectl("create", "namespace", "bench")
        for name, ip in NODES.items():
            api.kubectl(
                "apply",
                "-f",
                "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}),
            )
            api.kubectl(
                "patch",
                "node",
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps({"status": {"addresses": [{"type": "InternalIP", "address": ip}]}}),
            )
        api.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(CONFIG))
        cfg = client.Configuration()
        config.load_kube_config(str(api.kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = 16
        apiclient = client.ApiClient(cfg)
        core = client.CoreV1Api(apiclient)
        custom = client.CustomObjectsApi(apiclient)
        threading.Thread(
            target=renew_leases, args=(client.CoordinationV1Api(apiclient), stop), daemon=True
        ).start()
        metrics_port = free_port()
        controller = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bgplb.controller",
                "--kubeconfig",
                str(api.kubeconfig),
                "--namespace",
                NS,
                "--metrics-port",
                str(metrics_port),
                "--health",
                f"http://127.0.0.1:{free_port()}/healthz",
            ],
            stdout=(api.workdir / "controller.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for(
            "controller to lead",
            lambda: "leading" in (api.workdir / "controller.log").read_text(),
            timeout=60,
        )
        time.sleep(2)
        watcher = Watcher(core)
        threading.Thread(target=watcher.run, daemon=True).start()
        base_writes = writes_total(metrics_port)

        created: dict[str, float] = {}

        def create(name: str) -> None:
            core.create_namespaced_service("bench", service(name, "bench"))
            created[name] = time.monotonic()

        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, [f"b{i}" for i in range(args.burst)]))
        burst_created = time.monotonic() - started

        def routes() -> int:
            items = custom.list_namespaced_custom_object(
                "networking.bgplb.io", "v1", NS, "bgpadvertisedroutes"
            )["items"]
            return len(items)

        wait_for(
            "every burst VIP", lambda: len(watcher.vip_at) >= args.burst, timeout=1800, every=0.5
        )
        all_vips = time.monotonic() - started
        wait_for("every burst route", lambda: routes() >= args.burst, timeout=1800, every=0.5)
        all_routes = time.monotonic() - started
        time.sleep(2)
        burst_writes = writes_total(metrics_port) - base_writes
        burst_latency = [watcher.vip_at[n] - created[n] for n in created]

        single: list[float] = []
        for i in range(args.single):
            name = f"s{i}"
            create(name)
            wait_for(f"VIP of {name}", lambda n=name: n in watcher.vip_at, timeout=60, every=0.01)
            single.append(watcher.vip_at[name] - created[name])
        rss = peak_rss_mib(controller.pid)
    finally:
        stop.set()
        stop_processes(controller, timeout=30)
        remove(api)

    print(
        f"{args.burst} Services in a burst (created in {burst_created:.1f} s by 8 client "
        f"threads), then {args.single} one at a time; 3 nodes, 1 peer\n"
    )
    print("| measure | value |")
    print("|---|---|")
    print(f"| burst: all VIPs in Service status | {all_vips:.1f} s after the first create |")
    print(f"| burst: all BGPAdvertisedRoutes | {all_routes:.1f} s after the first create |")
    print(f"| burst: API writes per Service | {burst_writes / args.burst:.2f} |")
    print(
        f"| burst: create → VIP in status p50 / p99 | {statistics.median(burst_latency):.2f} s "
        f"/ {percentile(burst_latency, 0.99):.2f} s |"
    )
    print(
        f"| one at a time: create → VIP in status p50 / p99 | "
        f"{statistics.median(single) * 1000:.0f} ms / {percentile(single, 0.99) * 1000:.0f} ms |"
    )
    print(f"| controller peak RSS | {rss:.0f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
