"""The blast-radius guard on node liveness, pure.

Many Leases going stale at once while the controller still reaches the API server is
an infrastructure fault (the agents' path to the API server, a DaemonSet rollout
gone wrong, an overloaded API server), not many nodes dying together. As
kube-controller-manager's node lifecycle controller stops evicting in full
disruption, bgplb then keeps the liveness it last accepted: no floating IP moves, no
next hop is withdrawn, until enough Leases are fresh again.

"At once" spans a window, not one reconcile: agents renew at different moments, so
one fault makes their Leases expire up to a renewal period apart, and a reconcile
runs at each expiry. Nodes given up within the window still count as lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Liveness:
    live: frozenset[str]
    """The nodes to plan with."""
    frozen: bool
    """Whether `live` is the last accepted set, held because too many went stale."""
    stale: frozenset[str] = frozenset()
    """While frozen: the nodes lost in the window, whether held or already given up."""


@dataclass(frozen=True)
class GuardState:
    """What the guard remembers between reconciles."""

    accepted: frozenset[str] | None = None
    """The live set last planned with (None: none yet)."""
    given_up_at: Mapping[str, float] = field(default_factory=dict)
    """When nodes left the live set: those within the window, or any while frozen."""
    frozen: bool = False


def step(
    state: GuardState, observed: frozenset[str], now: float, window: float
) -> tuple[GuardState, Liveness]:
    """`observed`: the nodes whose Leases are fresh now. More than half of the nodes
    (accepted, or given up within `window`; at least three to judge by) lost freezes
    liveness at accepted plus observed: a node coming back is taken, none more is
    given up. Nodes already given up stay so (taking them back would cost each a
    second UPDATE; they return when their Leases are fresh). While frozen the window
    does not run out: the freeze lasts until enough Leases are fresh again."""
    if not state.accepted:
        return GuardState(observed), Liveness(observed, False)
    recent = frozenset(
        n for n, at in state.given_up_at.items() if state.frozen or now - at < window
    )
    reference = state.accepted | recent
    lost = reference - observed
    if len(reference) >= 3 and 2 * len(lost) > len(reference):
        liveness = Liveness(state.accepted | observed, True, lost)
    else:
        liveness = Liveness(observed, False)
    stamps = {
        n: at for n, at in state.given_up_at.items() if n in recent and n not in liveness.live
    }
    for node in state.accepted - liveness.live:
        stamps.setdefault(node, now)
    return GuardState(liveness.live, stamps, liveness.frozen), liveness
