"""Leases of Nodes that are gone: pure, so the rule is tested without a cluster."""

from __future__ import annotations

from bgplb.api.contract import lease_node
from bgplb.controller.snapshot import ClusterState

PRUNE_AFTER_LEASES = 10
"""Lease periods a Lease of a missing Node must have been silent before it goes."""


def orphan_leases(state: ClusterState, now: float, lease_expiry: float) -> list[str]:
    """Node Leases whose Node no longer exists and that nobody renewed for a while.

    A Node list that is empty says nothing (not yet read, or unreadable): then no
    Lease is an orphan, so a bad read can never delete every node's Lease.
    """
    if not state.nodes:
        return []
    silent_for = max(30.0, PRUNE_AFTER_LEASES * lease_expiry)
    return sorted(
        name
        for name in state.leases
        if (node := lease_node(name)) is not None
        and node not in state.nodes
        and now - state.lease_seen.get(name, now) >= silent_for
    )
