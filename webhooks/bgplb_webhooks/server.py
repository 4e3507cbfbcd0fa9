"""`bgplb-webhook`: validating and defaulting admission for bgplb, over HTTPS.

POST /validate and /mutate take AdmissionReview v1; GET /healthz. Per request it reads
what the decision needs — our objects and the agents' Leases in the operator's
namespace (and, for a Service, the other LoadBalancer Services) — and hands it to
bgplb.core.admission, which holds every rule. The serving certificate is re-read when
its files change (a Secret volume updated by the chart or cert-manager), so rotation
needs no restart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from aiohttp import web

from bgplb.api import GROUP, VERSION, BGPLoadBalancer, BGPPeer, NetworkGatewayGroup
from bgplb.api.contract import (
    ADDRESSES_ANNOTATION,
    SINGLETON_NAME,
    is_ours,
    lease_node,
    parse_addresses,
)
from bgplb.core.admission import SINGLETON_KINDS, Context, response, review
from bgplb.core.validate import Config, parse
from bgplb.logs import setup_logging

log = logging.getLogger("bgplb.webhook")


class Reader:
    """Reads the context of one decision from the API (synchronous client, in a thread)."""

    def __init__(self, namespace: str) -> None:
        from kubernetes import client

        self.namespace = namespace
        self.custom = client.CustomObjectsApi()
        self.coordination = client.CoordinationV1Api()
        self.core = client.CoreV1Api()

    def _ours(self, plural: str) -> list[Any]:
        reply: Any = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, _request_timeout=3
        )
        parsed = [parse(item, lenient=True)[0] for item in reply["items"]]
        return [p for p in parsed if p is not None]

    def _node_subnets(self) -> list[IPv4Network]:
        leases = self.coordination.list_namespaced_lease(self.namespace, _request_timeout=3).items
        subnets: set[IPv4Network] = set()
        for lease in leases:
            meta = lease.metadata
            if meta is None or lease_node(meta.name or "") is None:
                continue
            annotation = (meta.annotations or {}).get(ADDRESSES_ANNOTATION)
            subnets.update(a.network for a in parse_addresses(annotation))
        return sorted(subnets)

    def context(self, obj: dict[str, Any], operation: str = "CREATE") -> Context:
        """What deciding on `obj` needs, and no more: this runs on every admission of
        every Service, and a whole list per call made creating 1,000 Services
        quadratic (1.5 creates a second at 800 Services, found by bench-versus)."""
        if obj.get("kind") == "Service" and not is_ours(obj):
            return Context(namespace=self.namespace)  # not ours to judge: nothing to read
        service = obj.get("kind") == "Service"  # judged against the pools alone
        lbs = [r for r in self._ours("bgploadbalancers") if isinstance(r, BGPLoadBalancer)]
        gws = [] if service else self._ours("networkgatewaygroups")
        gws = [r for r in gws if isinstance(r, NetworkGatewayGroup)]
        peers = [] if service else self._ours("bgppeers")
        peers = [r for r in peers if isinstance(r, BGPPeer)]
        config = Config(
            load_balancer=next((r for r in lbs if r.metadata.name == SINGLETON_NAME), None),
            gateway=next((r for r in gws if r.metadata.name == SINGLETON_NAME), None),
            peers=peers,
        )
        services: list[dict[str, Any]] = []
        # A requested VIP is checked against the other Services; a singleton's
        # deletion against the Services using it. Read as JSON: the client's models
        # cost a millisecond an object.
        requested = obj.get("kind") == "Service" and (obj.get("spec") or {}).get("loadBalancerIP")
        deleting = obj.get("kind") in SINGLETON_KINDS and operation == "DELETE"
        if requested or deleting:
            reply: Any = self.core.list_service_for_all_namespaces(
                _request_timeout=5, _preload_content=False
            )
            services = [
                s
                for s in json.loads(reply.data)["items"]
                if (s.get("spec") or {}).get("type") == "LoadBalancer"
            ]
        subnets = self._node_subnets() if obj.get("kind") == "NetworkGatewayGroup" else []
        labels = self._namespace_labels(obj) if service and _selects_namespaces(config) else None
        return Context(config, subnets, services, namespace=self.namespace, namespace_labels=labels)

    def _namespace_labels(self, svc: dict[str, Any]) -> dict[str, str] | None:
        """None when it cannot be read: the controller judges it then (it watches
        namespaces), and admission refuses nothing for a failed read."""
        name = (svc.get("metadata") or {}).get("namespace")
        if not name:
            return None
        try:
            namespace = self.core.read_namespace(name, _request_timeout=3)
        except Exception as e:
            log.warning("cannot read namespace", extra={"namespace": name, "error": str(e)})
            return None
        return dict((namespace.metadata and namespace.metadata.labels) or {})


def _selects_namespaces(config: Config) -> bool:
    lb = config.load_balancer
    return lb is not None and any(
        p.service_allocation and p.service_allocation.namespace_selector
        for p in lb.spec.address_pools
    )


def app(reader: Reader) -> web.Application:
    async def handle(request: web.Request, *, mutate: bool) -> web.Response:
        review_request = (await request.json()).get("request") or {}
        # A DELETE carries the object being deleted as oldObject only.
        obj = review_request.get("object") or review_request.get("oldObject") or {}
        ctx = await asyncio.to_thread(reader.context, obj, review_request.get("operation", ""))
        decision = review(review_request, ctx, mutate=mutate)
        meta = obj.get("metadata") or {}
        log.info(
            "admission",
            extra={
                "webhook": "mutate" if mutate else "validate",
                "kind": obj.get("kind"),
                "object": meta.get("name"),
                "namespace": meta.get("namespace"),
                "allowed": decision.allowed,
                "reason": decision.message,
                "warnings": decision.warnings,
            },
        )
        return web.json_response(response(review_request, decision))

    async def validate(request: web.Request) -> web.Response:
        return await handle(request, mutate=False)

    async def mutate(request: web.Request) -> web.Response:
        return await handle(request, mutate=True)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    application = web.Application()
    application.router.add_post("/validate", validate)
    application.router.add_post("/mutate", mutate)
    application.router.add_get("/healthz", healthz)
    return application


class RotatingCertificate:
    """An SSL context whose certificate follows its files."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert, self.key = cert, key
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.loaded: tuple[float, float] = (0.0, 0.0)
        self.reload()

    def reload(self) -> bool:
        stamp = (self.cert.stat().st_mtime, self.key.stat().st_mtime)
        if stamp == self.loaded:
            return False
        # New handshakes use the new chain; connections already open keep theirs.
        self.context.load_cert_chain(self.cert, self.key)
        self.loaded = stamp
        return True

    async def watch(self, every: float = 10.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                if self.reload():
                    log.info("serving certificate reloaded", extra={"cert": str(self.cert)})
            except (OSError, ssl.SSLError) as e:  # mid-update: keep the old one
                log.warning("cannot reload the certificate", extra={"error": str(e)})


def main(argv: list[str] | None = None) -> int:
    from kubernetes import config

    p = argparse.ArgumentParser(prog="bgplb-webhook", description=__doc__)
    p.add_argument("--namespace", default=os.environ.get("BGPLB_NAMESPACE", "kube-system"))
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.add_argument("--address", default="0.0.0.0", help="listen address")
    p.add_argument("--port", type=int, default=9443)
    p.add_argument("--tls-cert", type=Path, default=Path("/tls/tls.crt"))
    p.add_argument("--tls-key", type=Path, default=Path("/tls/tls.key"))
    args = p.parse_args(argv)
    setup_logging()
    if args.kubeconfig:
        config.load_kube_config(args.kubeconfig)
    else:
        config.load_incluster_config()
    cert = RotatingCertificate(args.tls_cert, args.tls_key)

    async def run() -> None:
        # As PID 1 of its container the process gets no default SIGTERM action: stop
        # on it, or every rollout waits out the grace period.
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        runner = web.AppRunner(app(Reader(args.namespace)), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, args.address, args.port, ssl_context=cert.context).start()
        log.info("serving", extra={"address": args.address, "port": args.port})
        try:
            await cert.watch()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
