"""Prometheus metrics and /healthz of the node agent, named bgplb_* in base units."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

SESSIONS = Gauge("bgplb_agent_sessions", "This node's BGP sessions by state.", ["state"])
PATHS = Gauge("bgplb_agent_paths_advertised", "Paths this node's service speaker advertises.")
FLOATING_IP_CHANGES = Counter(
    "bgplb_agent_floating_ip_changes_total",
    "Floating IPs added to or removed from this node.",
    ["op"],
)
FENCES = Counter(
    "bgplb_agent_fences_total", "Times the agent dropped its floating IPs (self-fencing)."
)
API_ERRORS = Counter(
    "bgplb_agent_api_errors_total", "Failed calls to the Kubernetes API.", ["call"]
)
ROUTES_REFUSED = Gauge(
    "bgplb_agent_routes_refused",
    "Routes this agent will not advertise: not a /32 inside an address pool (0 on a node "
    "with no Service session, which advertises none).",
)
MESH_PROBES = Counter(
    "bgplb_agent_mesh_probes_total",
    "Mesh probes sent to, and verified answers received from, each peer node "
    "(loss: 1 - answered/sent).",
    ["peer", "result"],
)
MESH_DEAD = Gauge(
    "bgplb_agent_mesh_dead_nodes", "Nodes the mesh's quorum holds for dead, next hops left out."
)
MESH_DETECTION = Histogram(
    "bgplb_agent_mesh_detection_seconds",
    "From a node's last answer to this agent until the quorum held it for dead.",
    buckets=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0),
)
APPLY_DELAY = Histogram(
    "bgplb_agent_apply_delay_seconds",
    "From an input change seen by the agent's watches until its speaker held it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
NEXT_HOP_WITHDRAWALS = Counter(
    "bgplb_agent_next_hop_withdrawals_total",
    "Next hops this agent left out of its routes before the controller did, by reason.",
    ["reason"],
)
BFD_SESSIONS = Gauge(
    "bgplb_agent_bfd_sessions", "This node's BFD sessions (the speaker Pod's) by state.", ["state"]
)
BGP_LISTEN_PORT = Gauge(
    "bgplb_agent_bgp_listen_port",
    "The port this node's service speaker accepts sessions on (0: none, it opens every "
    "session itself: listener off, or the port was taken).",
)
SPEAKER_ERRORS = Counter("bgplb_agent_speaker_errors_total", "Failed calls to gobgpd.")
STALL_SECONDS = Histogram(
    "bgplb_agent_wakeup_delay_seconds",
    "How late the agent's event loop and a thread of its own woke from a 100 ms sleep.",
    ["where"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)
RECONCILED_AT = Gauge(
    "bgplb_agent_last_reconcile_timestamp_seconds", "When the agent last reconciled."
)


async def serve(host: str, port: int, healthy: Callable[[], bool]) -> web.AppRunner:
    """/metrics and /healthz (200 while the reconcile loop is alive)."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        ok = healthy()
        return web.Response(status=200 if ok else 503, text="ok" if ok else "reconcile stalled")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def mark_reconciled() -> None:
    RECONCILED_AT.set(time.time())
