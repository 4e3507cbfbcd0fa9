"""Prometheus metrics of the controller, named bgplb_* in base units."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILE_SECONDS = Histogram(
    "bgplb_reconcile_duration_seconds",
    "Time of one reconcile: snapshot, plan, diff and writes.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WRITES = Counter("bgplb_api_writes_total", "Objects and statuses written to the API.")
WITHDRAWALS_HELD = Gauge(
    "bgplb_withdrawals_held",
    "Routes and sessions kept for now although the plan withdraws them (paced).",
)
EVENTS_DROPPED = Counter(
    "bgplb_events_dropped_total", "Events not posted: their object's rate limit was reached."
)
API_ERRORS = Counter("bgplb_api_errors_total", "Failed API calls, by call.", ["call"])
SESSIONS = Gauge("bgplb_sessions", "BGPSession objects by reported state.", ["state"])
ROUTES = Gauge("bgplb_routes_advertised", "Service routes (VIPs) advertised.")
FLOATING_IP_MOVES = Counter("bgplb_floating_ip_moves_total", "Floating IPs moved to another node.")
LEADER = Gauge("bgplb_leader", "1 while this replica is the active controller.")
API_CONTACT = Gauge(
    "bgplb_api_contact", "1 while the controller reaches the API server (node liveness runs)."
)
LIVENESS_FROZEN = Gauge(
    "bgplb_node_liveness_frozen",
    "1 while more than half the nodes' Leases went stale at once and liveness is held.",
)
