"""A kube-proxy stand-in for the lab's nodes.

It puts every LoadBalancer ingress IP on the loopback interface (labelled
`lo:vip`), as kube-proxy's IPVS mode puts them on its dummy `kube-ipvs0`, so packets
the ToR routes to this node for a VIP are delivered locally; and it answers HTTP on
every address with the node's name, so a client sees which node served it. Fail
static, like kube-proxy: when the API server cannot be read, the VIPs stay as they are.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from typing import Any

from pyroute2 import IPRoute

LABEL = "lo:vip"
log = logging.getLogger("bgplb_lab.proxy")


def ingress_ips(services: list[Any]) -> set[IPv4Address]:
    ips = set()
    for svc in services:
        if svc.spec.type != "LoadBalancer" or svc.status.load_balancer is None:
            continue
        for ingress in svc.status.load_balancer.ingress or []:
            if ingress.ip:
                ips.add(IPv4Address(ingress.ip))
    return ips


def sync(ipr: IPRoute, index: int, wanted: set[IPv4Address]) -> None:
    present = {
        IPv4Address(a.get_attr("IFA_ADDRESS"))
        for a in ipr.get_addr(index=index, family=2)  # AF_INET
        if a.get_attr("IFA_LABEL") == LABEL
    }
    for ip in wanted - present:
        ipr.addr("add", index=index, address=str(ip), prefixlen=32, label=LABEL)
    for ip in present - wanted:
        ipr.addr("del", index=index, address=str(ip), prefixlen=32)


def serve(node: str, port: int) -> ThreadingHTTPServer:
    answer = f"{node}\n".encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:  # one line per request would drown the log
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    from kubernetes import client, config

    p = argparse.ArgumentParser(prog="bgplb-lab-proxy", description=__doc__)
    p.add_argument("--node", required=True)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--port", type=int, default=80)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    config.load_kube_config(args.kubeconfig)
    core = client.CoreV1Api()
    ipr = IPRoute()
    index = ipr.link_lookup(ifname="lo")[0]
    serve(args.node, args.port)
    while True:
        with contextlib.suppress(Exception):  # API unreachable: keep the VIPs (fail static)
            services = core.list_service_for_all_namespaces(_request_timeout=2).items
            sync(ipr, index, ingress_ips(services))
        time.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(main())
