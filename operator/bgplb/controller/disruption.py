"""The blast-radius guard on node liveness, pure.

Many Leases going stale at once while the controller still reaches the API server is
an infrastructure fault (the agents' path to the API server, a DaemonSet rollout
gone wrong, an overloaded API server), not many nodes dying together. As
kube-controller-manager's node lifecycle controller stops evicting in full
disruption, bgplb then keeps the liveness it last accepted: no floating IP moves, no
next hop is withdrawn, until enough Leases are fresh again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Liveness:
    live: frozenset[str]
    """The nodes to plan with."""
    frozen: bool
    """Whether `live` is the last accepted set, held because too many went stale."""
    stale: frozenset[str] = frozenset()
    """While frozen: the nodes taken for live although their Leases are stale."""


def guard(accepted: frozenset[str] | None, observed: frozenset[str]) -> Liveness:
    """`accepted`: the live set last planned with (None: none yet). `observed`: the
    nodes whose Leases are fresh now. More than half of the accepted nodes stale at
    once (with at least three to judge by) freezes liveness at accepted plus observed:
    a node coming back is taken, none is given up."""
    if not accepted:
        return Liveness(observed, False)
    lost = accepted - observed
    if len(accepted) >= 3 and 2 * len(lost) > len(accepted):
        return Liveness(accepted | observed, True, lost)
    return Liveness(observed, False)
