"""Which node Leases the controller deletes."""

from __future__ import annotations

from bgplb.controller.prune import orphan_leases
from bgplb.controller.snapshot import ClusterState


def state(nodes: list[str], leases: dict[str, float]) -> ClusterState:
    s = ClusterState("kube-system")
    s.nodes = {n: {"metadata": {"name": n}} for n in nodes}
    s.leases = {name: {"metadata": {"name": name}} for name in leases}
    s.lease_seen = dict(leases)
    return s


def test_only_silent_leases_of_missing_nodes() -> None:
    s = state(
        ["n1", "n2"],
        {
            "bgplb-node-n1": 0.0,  # its Node exists: kept however old
            "bgplb-node-gone": 0.0,  # Node deleted, silent 100 s: pruned
            "bgplb-node-new": 90.0,  # no Node yet (registering?), renewed 10 s ago: kept
            "bgplb-controller": 0.0,  # not a node Lease
        },
    )
    assert orphan_leases(s, now=100.0, lease_expiry=3.0) == ["bgplb-node-gone"]
    # A longer lease period waits longer: 10 periods.
    assert orphan_leases(s, now=100.0, lease_expiry=15.0) == []


def test_an_empty_node_list_prunes_nothing() -> None:
    s = state([], {"bgplb-node-n1": 0.0, "bgplb-node-n2": 0.0})
    assert orphan_leases(s, now=1000.0, lease_expiry=3.0) == []
